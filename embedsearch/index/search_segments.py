"""One search over many segments, merged exactly.

Each segment answers its own top ``k`` with tombstones left out (asking faiss for as many more results as the
segment has tombstones, when they are few, and excluding them with a selector otherwise); the answers are merged
into one top ``k`` by score, ties broken by chunk id, so that the result does not depend on how the chunks are
split into segments. A filtered search routes the allowed chunk ids to their segments and scores them exactly
where they are few (or the segment is exact anyway), else lets faiss search with a selector.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import faiss
import numpy as np

from embedsearch.index import factory
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.segments import Segment

# Allowed chunks in a segment up to which a filtered search scores them exactly instead of asking faiss with a
# selector (one bit test per candidate): exact scoring costs one dot product per allowed chunk (IVF: a hash
# lookup and a copy too); an HNSW search that must find k allowed chunks visits about efSearch x links /
# selectivity nodes; a flat scan with a selector tests every vector, so past a quarter of them it is cheaper
# than scoring the allowed ones one by one. Chosen with benchmarks/bench_writes.py.
EXACT_FILTER_LIMIT = {"hnsw": 4096, "ivf": 1024, "other": 4096}
FLAT_EXACT_SHARE = 4
# An HNSW search with a selector finds few of the allowed neighbours when they are rare (measured at 100,000
# clustered vectors, efSearch 64: recall@10 0.90 at 10% selectivity, 0.16 at 1%): below HNSW_EXACT_SHARE it
# scores them exactly; above, efSearch grows as 1 / (2.5 selectivity) (10%: 256, recall 0.96), up to HNSW_EF_CAP.
HNSW_EXACT_SHARE = 0.05
HNSW_EF_CAP = 1024
# Tombstones in a segment up to which a search over-fetches by their number and drops them afterwards (exact);
# past it, faiss skips them with a selector (a bit test per candidate). A flat scan's cost hardly grows with k,
# an HNSW search's grows with efSearch = max(ef, k), so the limits differ (benchmarks/bench_writes.py).
OVERFETCH_LIMIT = {"flat": 4096, "other": 64}
# query x chunk scores computed at once by exact scoring (bounds its memory to 16 MB of labels and scores)
EXACT_BLOCK = 1 << 20
EMPTY = np.zeros(0, dtype=np.int64)

Result = tuple[np.ndarray, np.ndarray]


class Tombstones:
    """The tombstones (sorted chunk ids) inside one segment, with a faiss selector that excludes them, built once
    per committed state and shared by every search of it."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self._lock = threading.Lock()
        self._selector: faiss.IDSelector | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def excluding(self) -> faiss.IDSelector:
        with self._lock:
            if self._selector is None:
                bits = np.zeros(int(self.ids.max()) + 1, dtype=bool)
                bits[self.ids] = True
                self._bitmap = np.packbits(bits, bitorder="little")  # kept: faiss reads it without a copy
                self._member = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
                self._selector = faiss.IDSelectorNot(self._member)
            return self._selector


NO_TOMBSTONES = Tombstones(np.zeros(0, dtype=np.int64))


class Allowed:
    """The chunk ids a filter allows (sorted), with a faiss selector of them built at most once per search."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self._selector: faiss.IDSelector | None = None

    def selecting(self) -> faiss.IDSelector:
        if self._selector is None:
            bits = np.zeros(int(self.ids.max()) + 1 if len(self.ids) else 1, dtype=bool)
            bits[self.ids] = True
            self._bitmap = np.packbits(bits, bitorder="little")  # kept: faiss reads it without a copy
            self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        return self._selector


def search_segments(
    segments: list[Segment],
    dead: dict[int, Tombstones],
    queries: np.ndarray,
    k: int,
    knobs: SearchKnobs,
    allowed: np.ndarray | None = None,
) -> Result:
    """Top ``k`` live chunks over ``segments``: ``(D, I)`` of shape ``(len(queries), k)``, padded with -inf / -1.

    ``dead[segment number]`` are the tombstones inside each segment; ``allowed`` (sorted, unique chunk ids), if
    given, restricts the candidates.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    routed = route(segments, allowed) if allowed is not None else None
    members = Allowed(allowed) if allowed is not None else None
    parts = []
    for position, segment in enumerate(segments):
        tombstones = dead.get(segment.number, NO_TOMBSTONES)
        if routed is None:
            parts.append(_unfiltered(segment, tombstones, queries, k, knobs))
        elif len(routed[position]):
            mine = _without(routed[position], tombstones.ids)
            parts.append(_filtered(segment, mine, queries, k, knobs, members.selecting))
    return merge_top_k(parts, len(queries), k)


def _unfiltered(segment: Segment, tombstones: Tombstones, queries: np.ndarray, k: int, knobs: SearchKnobs) -> Result:
    if not len(segment):
        return _empty(len(queries), k)
    if not len(tombstones):
        return segment.search(queries, k, knobs)
    if len(tombstones) <= OVERFETCH_LIMIT["flat" if factory.is_flat(segment.index) else "other"]:
        D, I = segment.search(queries, k + len(tombstones), knobs)
        gone = np.isin(I, tombstones.ids)
        return np.where(gone, -np.inf, D).astype(np.float32), np.where(gone, -1, I)
    return segment.search(queries, k, knobs, tombstones.excluding())


def _filtered(
    segment: Segment, allowed: np.ndarray, queries: np.ndarray, k: int, knobs: SearchKnobs, selector
) -> Result:
    """``allowed``: the segment's own allowed chunks; ``selector()``: a faiss selector of every allowed chunk."""
    if not len(allowed):
        return _empty(len(queries), k)
    kind, share = factory.kind(segment.index), len(allowed) / len(segment)
    if kind == "flat":
        exact = share * FLAT_EXACT_SHARE <= 1
    else:
        exact = len(allowed) <= EXACT_FILTER_LIMIT[kind] or (kind == "hnsw" and share <= HNSW_EXACT_SHARE)
    if exact:
        return _exact(segment, allowed, queries, k)
    if kind == "ivf":  # probe as many lists as it takes to see as many allowed chunks as an unfiltered search sees
        lists = faiss.extract_index_ivf(segment.index).nlist
        knobs = replace(knobs, nprobe=min(lists, math.ceil(knobs.nprobe / share)))
    elif kind == "hnsw":
        ef = factory.hnsw_ef(knobs, len(segment))
        knobs = replace(knobs, ef_search=min(HNSW_EF_CAP, max(ef, math.ceil(ef / (2.5 * share)))), ef_auto=False)
    return segment.search(queries, min(k, len(allowed)), knobs, selector())


def _exact(segment: Segment, allowed: np.ndarray, queries: np.ndarray, k: int) -> Result:
    rows = max(1, EXACT_BLOCK // len(allowed))
    parts = [
        top_k(segment.exact_scores(queries[a : a + rows], allowed), allowed, k) for a in range(0, len(queries), rows)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def route(segments: list[Segment], chunk_ids: np.ndarray) -> list[np.ndarray]:
    """For each segment, the sorted ``chunk_ids`` it holds (ids in no segment are dropped)."""
    spans = sorted((first, last, s) for s, segment in enumerate(segments) for first, last in segment.info.ranges)
    if not spans or not len(chunk_ids):
        return [EMPTY for _ in segments]
    firsts = np.array([span[0] for span in spans], dtype=np.int64)
    lasts = np.array([span[1] for span in spans], dtype=np.int64)
    owners = np.array([span[2] for span in spans], dtype=np.int64)
    place = np.searchsorted(firsts, chunk_ids, side="right") - 1
    inside = (place >= 0) & (chunk_ids < lasts[np.maximum(place, 0)])
    owner = np.where(inside, owners[np.maximum(place, 0)], -1)
    routed = []
    for s, segment in enumerate(segments):
        mine = chunk_ids[owner == s]
        routed.append(mine[segment.contains(mine)])
    return routed


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> Result:
    """The best ``k`` of each row of ``scores`` (columns = ``ids``), in faiss's ``(D, I)`` form."""
    take = min(k, len(ids))
    D = np.full((len(scores), k), -np.inf, dtype=np.float32)
    I = np.full((len(scores), k), -1, dtype=np.int64)
    if take:
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        D[:, :take] = np.take_along_axis(scores, best, axis=1)
        I[:, :take] = ids[best]
    return D, I


def merge_top_k(parts: list[Result], n_queries: int, k: int) -> Result:
    """Merge per-segment results into the top ``k`` per query, by score descending then chunk id ascending."""
    if not parts:
        return _empty(n_queries, k)
    D = np.concatenate([p[0] for p in parts], axis=1)
    I = np.concatenate([p[1] for p in parts], axis=1)
    missing = I < 0
    ids = np.where(missing, np.iinfo(np.int64).max, I)
    scores = np.where(missing, np.inf, -D.astype(np.float64))
    order = np.lexsort((ids, scores), axis=1)[:, :k]
    D, I = np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)
    if D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf)
        I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
    D = np.where(I < 0, -np.inf, D).astype(np.float32)
    return D, I


def _without(ids: np.ndarray, removed: np.ndarray) -> np.ndarray:
    return ids[~np.isin(ids, removed, assume_unique=True)] if len(removed) else ids


def _empty(n_queries: int, k: int) -> Result:
    return np.full((n_queries, k), -np.inf, dtype=np.float32), np.full((n_queries, k), -1, dtype=np.int64)
