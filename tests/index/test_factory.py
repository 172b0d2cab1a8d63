"""Approximate indexes against exact search, the ``auto`` choice, and spec errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.errors import InvalidInputError
from embedsearch.index import factory
from embedsearch.index.factory import SearchKnobs, choose_spec, make_index, train_and_add
from embedsearch.index.stored import exact_top_k


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, dim))
    x = centres[rng.integers(0, 100, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("spec,min_recall", [("Flat", 1.0), ("HNSW32,Flat", 0.95), ("IVF32,Flat", 0.9)])
def test_approximate_indexes_against_exact(spec, min_recall):
    data, queries = _clustered(3000), _clustered(50, seed=1)
    ids = np.arange(1000, 4000, dtype=np.int64)
    index = make_index(spec, 32)
    train_and_add(index, ids, data, spec)
    _, I = factory.search(index, queries, 10, SearchKnobs(ef_search=128, nprobe=16))
    _, exact = exact_top_k(queries, ids, data, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, exact, strict=True)])
    assert recall >= min_recall


def test_search_knobs_reach_the_index_behind_the_id_map():
    data, queries = _clustered(3000), _clustered(50, seed=1)
    index = make_index("HNSW32,Flat", 32)
    train_and_add(index, np.arange(3000), data, "")
    _, narrow = factory.search(index, queries, 10, SearchKnobs(ef_search=10))
    _, wide = factory.search(index, queries, 10, SearchKnobs(ef_search=400))
    _, exact = exact_top_k(queries, np.arange(3000), data, 10)

    def recall(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, exact, strict=True)])

    assert recall(wide) > recall(narrow)


def test_exact_top_k_pads_with_minus_one():
    data = _clustered(3)
    D, I = exact_top_k(data[:1], np.array([5, 6, 7]), data, 5)
    assert I[0, 0] == 5 and list(I[0, 3:]) == [-1, -1] and np.isclose(D[0, 0], 1.0)


def test_remove_ids_reports_index_types_that_cannot_remove():
    data = _clustered(100)
    flat, hnsw = make_index("Flat", 32), make_index("HNSW32,Flat", 32)
    for index in (flat, hnsw):
        train_and_add(index, np.arange(100), data, "")
    assert factory.remove_ids(flat, np.array([3, 4])) and flat.ntotal == 98
    assert not factory.remove_ids(hnsw, np.array([3]))


def test_auto_spec_is_exact_for_small_collections_and_respects_memory():
    assert choose_spec(1000, 384) == "Flat"
    assert choose_spec(factory.EXACT_SEARCH_LIMIT + 1, 384) == "HNSW32,Flat"
    spec = choose_spec(1_000_000, 384, memory_budget=200 * 10**6)
    assert spec.startswith("IVF") and spec.endswith("np")
    m = int(spec.split(",PQ")[1][:-2])
    assert 1_000_000 * (m + 8) <= 200 * 10**6 and 384 % m == 0


@pytest.mark.parametrize("spec", ["bogus", "IVF4096,Flat"])
def test_bad_or_untrainable_specs_raise_invalid_input(spec):
    with pytest.raises(InvalidInputError, match=spec):
        index = make_index(spec, 32)
        train_and_add(index, np.arange(100), _clustered(100), spec)
