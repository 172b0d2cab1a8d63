"""Searching many segments against one, tombstones, filters past every internal threshold, and the merge plan."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.index import factory
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.merge_policy import CompactionPolicy, plan_merges
from embedsearch.index.search_segments import Tombstones, merge_top_k, route, search_segments
from embedsearch.index.segments import merge_ranges, ranges_of, segment_from_index
from embedsearch.index.store import SegmentInfo, chunk_ranges

DIM = 16
EXHAUSTIVE = SearchKnobs(ef_search=4096, nprobe=4096)


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _segment(number: int, ids: np.ndarray, vectors: np.ndarray, spec: str = "Flat"):
    index = factory.make_index(spec, DIM)
    factory.train_and_add(index, ids, vectors, spec)
    info = SegmentInfo(number, f"seg.{number}", len(ids), 0, "", ranges_of(ids))
    return segment_from_index(info, index, DIM, "test")


def _split(ids: np.ndarray, vectors: np.ndarray, parts: int, spec: str = "Flat"):
    cuts = np.array_split(np.arange(len(ids)), parts)
    return [_segment(n + 1, ids[c], vectors[c], spec) for n, c in enumerate(cuts)]


def _reference(queries, ids, vectors, k, allowed=None):
    """Exact top k in float64, ties by id (what a merge must give)."""
    keep = np.isin(ids, allowed) if allowed is not None else np.ones(len(ids), bool)
    scores = queries.astype(np.float64) @ vectors[keep].astype(np.float64).T
    I = []
    for row in scores:
        order = np.lexsort((ids[keep], -row))[:k]
        I.append(np.pad(ids[keep][order], (0, k - len(order)), constant_values=-1))
    return np.array(I)


@pytest.mark.parametrize("parts", [1, 3, 8])
@pytest.mark.parametrize("spec", ["Flat", "HNSW16,Flat"])
def test_many_segments_answer_as_one(parts, spec):
    ids = np.arange(1000, 1600, dtype=np.int64)
    vectors, queries = _unit(600, 0), _unit(12, 1)
    segments = _split(ids, vectors, parts, spec)
    D, I = search_segments(segments, {}, queries, 10, EXHAUSTIVE)
    assert np.array_equal(I, _reference(queries, ids, vectors, 10))
    assert (np.diff(D, axis=1) <= 0).all()


@pytest.mark.parametrize("spec", ["Flat", "HNSW16,Flat"])
@pytest.mark.parametrize("dead_count", [5, 290])  # below and above OVERFETCH_LIMIT (set to 64): overfetch, selector
def test_tombstones_never_come_back_and_are_replaced_by_the_next_best(dead_count, spec, monkeypatch):
    from embedsearch.index import search_segments as module  # the module, for its thresholds

    monkeypatch.setattr(module, "OVERFETCH_LIMIT", {"flat": 64, "other": 64})
    ids = np.arange(600, dtype=np.int64)
    vectors, queries = _unit(600, 2), _unit(8, 3)
    segments = _split(ids, vectors, 2, spec)
    dead = np.sort(np.random.default_rng(4).choice(ids[:300], dead_count, replace=False))
    _, I = search_segments(segments, {1: Tombstones(dead)}, queries, 10, EXHAUSTIVE)
    live = np.setdiff1d(ids, dead)
    assert np.array_equal(I, _reference(queries, ids, vectors, 10, allowed=live))


@pytest.mark.parametrize("spec", ["Flat", "HNSW16,Flat", "IVF16,Flat"])
@pytest.mark.parametrize("allowed_count", [7, 900, 30_000])  # exact scoring below EXACT_FILTER_LIMIT, selector above
def test_filters_below_and_above_the_exact_limit(spec, allowed_count, monkeypatch):
    from embedsearch.index import search_segments as module  # the module, for its threshold

    monkeypatch.setattr(module, "EXACT_FILTER_LIMIT", {"hnsw": 500, "ivf": 500, "other": 500})  # 900: a selector
    n = 40_000 if allowed_count == 30_000 else 1200
    ids = np.arange(n, dtype=np.int64) * 3  # not consecutive: routing must find them
    vectors, queries = _unit(n, 5), _unit(6, 6)
    segments = _split(ids, vectors, 3, spec)
    allowed = np.sort(np.random.default_rng(7).choice(ids, allowed_count, replace=False))
    dead_ids = segments[1].ids[:50]
    _, I = search_segments(segments, {2: Tombstones(dead_ids)}, queries, 10, EXHAUSTIVE, allowed)
    want = _reference(queries, ids, vectors, 10, allowed=np.setdiff1d(allowed, dead_ids))
    if spec == "Flat" or allowed_count <= 500:  # exact, or a flat scan with a selector: exact too
        assert np.array_equal(I, want)
    else:  # HNSW and IVF with a selector are approximate; exhaustive knobs find nearly all
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, want, strict=True)])
        assert recall >= 0.95
    assert np.isin(I[I >= 0], allowed).all() and not np.isin(I, dead_ids).any()


def test_a_filter_matching_fewer_than_k_returns_them_all_padded():
    ids = np.arange(100, dtype=np.int64)
    segments = _split(ids, _unit(100, 8), 2)
    D, I = search_segments(segments, {}, _unit(1, 9), 10, EXHAUSTIVE, np.array([3, 77]))
    assert sorted(I[0, :2]) == [3, 77] and list(I[0, 2:]) == [-1] * 8 and np.isinf(D[0, 2:]).all()


def test_route_sends_each_id_to_the_segment_that_holds_it():
    a = _segment(1, np.array([1, 2, 3, 10, 11]), _unit(5, 1))
    b = _segment(2, np.array([4, 5, 12]), _unit(3, 2))
    routed = route([a, b], np.array([1, 4, 5, 6, 11, 12, 99]))
    assert [r.tolist() for r in routed] == [[1, 11], [4, 5, 12]]


def test_merge_orders_by_score_then_chunk_id():
    parts = [
        (np.array([[0.9, 0.5]], np.float32), np.array([[7, 3]])),
        (np.array([[0.9, -np.inf]], np.float32), np.array([[2, -1]])),
    ]
    D, I = merge_top_k(parts, 1, 4)
    assert I.tolist() == [[2, 7, 3, -1]] and D[0, 3] == -np.inf


def test_chunk_ranges_and_ranges_of_round_trip():
    assert chunk_ranges([(5, 3), (20, 1), (0, 0)]).tolist() == [5, 6, 7, 20]
    assert ranges_of(np.array([9, 1, 2, 3, 7, 8])) == [[1, 4], [7, 10]]
    assert merge_ranges([[[1, 4], [10, 12]], [[4, 6]], [[11, 20]]]) == [[1, 6], [10, 20]]


POLICY = CompactionPolicy(max_segments=8, merge_factor=4, floor_vectors=16, max_deleted_fraction=0.25)
LONG_RUN = CompactionPolicy(max_segments=16, merge_factor=4, floor_vectors=16)


def test_plan_merges_segments_of_a_size_and_rewrites_those_with_many_tombstones():
    assert plan_merges([(1, 1000, 0), (2, 1, 0), (3, 1, 0)], POLICY) == []
    tiny = [(n, 1, 0) for n in range(2, 6)]
    assert plan_merges([(1, 1000, 0), *tiny], POLICY) == [[2, 3, 4, 5]]  # four below the floor
    assert plan_merges([(1, 1000, 300), (2, 5, 0)], POLICY) == [[1]]  # 30% tombstones
    assert plan_merges([(1, 1000, 0), (2, 3, 3)], POLICY) == [[2]]  # nothing left alive: dropped
    tiers = [(1, 64, 0), (2, 70, 0), (3, 100, 0), (4, 200, 0), (5, 5000, 0)]
    assert plan_merges(tiers, POLICY) == [[1, 2, 3, 4]]  # 64..255 share a tier (16 x 4 .. 16 x 16)
    many = [(n, 16 * 4**n, 0) for n in range(9)] + [(9, 1, 0)]  # nine large segments, one per tier, a buffer
    assert plan_merges(many, POLICY) == [[0, 1]]  # one more large than max_segments: the two smallest merge
    buffers = [(n, 3, 0) for n in range(20, 23)]  # buffers under the floor do not count towards the cap
    assert plan_merges([(n, 16 * 4**n, 0) for n in range(8)] + buffers, POLICY) == []


def test_plan_merges_keeps_segments_few_and_rewrites_bounded():
    """A long run of one-document writes: segments stay within the cap, and each write rewrites on average at
    most about floor x merge_factor / 2 vectors (the small segments) plus log(N) rewrites per vector above."""
    segments, rewritten, next_number, writes = [(0, 100_000, 0)], 0, 1, 3000
    for _ in range(writes):
        segments.append((next_number, 1, 0))
        next_number += 1
        for group in plan_merges(segments, LONG_RUN):
            merged = sum(v for n, v, _ in segments if n in group)
            rewritten += merged
            segments = [s for s in segments if s[0] not in group] + [(next_number, merged, 0)]
            next_number += 1
        assert len(segments) <= LONG_RUN.max_segments
    small = LONG_RUN.floor_vectors * LONG_RUN.merge_factor / 2
    assert rewritten / writes <= small + np.log(writes) / np.log(LONG_RUN.merge_factor) + 1
    assert sum(v for _, v, _ in segments) == 100_000 + writes
