"""Approximate indexes against exact search, the ``auto`` choice, and spec errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.errors import InvalidInputError
from embedsearch.index import factory
from embedsearch.index.factory import SearchKnobs, choose_spec, make_index, train_and_add


def exact_top_k(queries: np.ndarray, ids: np.ndarray, data: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: inner products in float64 (so its own rounding cannot reorder near ties), best first."""
    scores = queries.astype(np.float64) @ data.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    D = np.take_along_axis(scores, order, axis=1)
    I = ids[order]
    pad = k - I.shape[1]
    return np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf), np.pad(I, ((0, 0), (0, pad)), constant_values=-1)


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


@pytest.mark.parametrize(
    "spec,exact",
    [("Flat", True), ("HNSW32,Flat", True), ("IVF4,Flat", True), ("IVF4,PQ8np", False), ("HNSW32,SQ8", False)],
)
def test_specs_that_keep_vectors_exactly_give_them_back(spec, exact):
    data = _clustered(3000)
    ids = np.arange(500, 3500, dtype=np.int64)
    index = make_index(spec, 32)
    train_and_add(index, ids, data, spec)
    factory.prepare_for_lookups(index)
    assert factory.keeps_exact_vectors(spec, 32) is exact
    assert sorted(factory.stored_ids(index).tolist()) == ids.tolist()
    back = index.reconstruct_batch(ids[[0, 7, 2999]])
    assert np.array_equal(back, data[[0, 7, 2999]]) is exact


def test_flat_storage_is_in_insertion_order():
    data = _clustered(50)
    for spec in ("Flat", "HNSW16,Flat"):
        index = make_index(spec, 32)
        train_and_add(index, np.arange(100, 150), data, spec)
        flat = factory.flat_storage(index)
        assert flat is not None and flat.ntotal == 50
        assert np.array_equal(flat.reconstruct(7), data[7])
    assert factory.flat_storage(make_index("IVF4,Flat", 32)) is None


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
