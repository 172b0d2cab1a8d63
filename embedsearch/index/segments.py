"""Segment files: immutable faiss indexes over a set of chunk ids, written once and checked when read.

A segment holds the vectors of the chunks one write added (or that a compaction merged), under their chunk
ids. It is written to a temporary file, synced and renamed before any transaction names it; its size and
sha256 are recorded with it, so a truncated file, another index's file or a changed byte is caught when it is
read (the hash costs about 0.6 s per GB here). Specs that compress vectors (PQ, SQ, ...) keep the raw float32
vectors beside the segment, so that compaction can retrain without the loss of the codes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from embedsearch.errors import CorruptIndexError
from embedsearch.files import sync_directory
from embedsearch.index import factory
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.storage import raw_vectors_name, segment_name
from embedsearch.index.store import SegmentInfo


@dataclass
class Segment:
    """A segment read into memory. ``ids`` are its chunk ids, sorted; ``positions[i]`` is where ``ids[i]`` lies
    inside the faiss index (for exact scoring of a subset)."""

    info: SegmentInfo
    index: faiss.Index
    ids: np.ndarray
    positions: np.ndarray

    @property
    def number(self) -> int:
        return self.info.segment

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, queries: np.ndarray, k: int, knobs: SearchKnobs, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The faiss search of this segment: ``(D, I)`` of shape ``(len(queries), k)`` padded with -inf / -1."""
        return factory.search(self.index, queries, k, knobs, selector)

    def contains(self, chunk_ids: np.ndarray) -> np.ndarray:
        """A boolean mask of which ``chunk_ids`` (int64) this segment holds."""
        if not len(self.ids):
            return np.zeros(len(chunk_ids), dtype=bool)
        places = np.minimum(np.searchsorted(self.ids, chunk_ids), len(self.ids) - 1)
        return self.ids[places] == chunk_ids

    def exact_scores(self, queries: np.ndarray, chunk_ids: np.ndarray) -> np.ndarray:
        """Inner products ``(len(queries), len(chunk_ids))`` with chunks of this segment, from the stored vectors."""
        flat = factory.flat_storage(self.index)
        if flat is None:
            vectors = self.index.reconstruct_batch(chunk_ids)
            return np.asarray(queries, dtype=np.float32) @ vectors.T
        positions = self.positions[np.searchsorted(self.ids, chunk_ids)]
        labels = np.ascontiguousarray(np.broadcast_to(positions, (len(queries), len(positions))), dtype=np.int64)
        scores = np.empty(labels.shape, dtype=np.float32)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        flat.compute_distance_subset(
            len(queries), faiss.swig_ptr(queries), len(positions), faiss.swig_ptr(scores), faiss.swig_ptr(labels)
        )
        return scores

    def vectors(self, chunk_ids: np.ndarray, directory: Path) -> np.ndarray:
        """The float32 vectors of some of its chunks: raw ones where the spec compresses them, else the stored ones."""
        if self.info.raw is None:
            return self.index.reconstruct_batch(np.ascontiguousarray(chunk_ids, dtype=np.int64))
        raw = np.load(directory / self.info.raw, mmap_mode="r")
        return np.ascontiguousarray(raw[self.positions_in_raw(chunk_ids)], dtype=np.float32)

    def positions_in_raw(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Rows of the raw-vector file (which is in sorted chunk-id order)."""
        return np.searchsorted(self.ids, chunk_ids)


def write_segment(
    directory: Path,
    epoch: int,
    number: int,
    index: faiss.Index,
    ranges: list[list[int]],
    *,
    sources: list[int] | None = None,
    raw: tuple[np.ndarray, np.ndarray] | None = None,
    quantizer: str | None = None,
    spec: str | None = None,
    finalize: bool = True,
) -> SegmentInfo:
    """Write segment ``number`` durably and describe it; ``raw`` is ``(chunk ids, vectors)`` for compressing specs.

    With ``finalize=False`` the files keep a ``.tmp`` suffix until :func:`finalize_segment` (a compaction renames
    them only under the writer's lock, where no writer tidies them away)."""
    path = directory / segment_name(epoch, number)
    data = faiss.serialize_index(index)
    _write_durably(path, data, finalize)
    raw_name = None
    if raw is not None:
        raw_name = raw_vectors_name(epoch, number)
        ids, vectors = raw
        order = np.argsort(ids, kind="stable")
        _save_array(directory / raw_name, np.ascontiguousarray(vectors[order], dtype=np.float32), finalize)
    sync_directory(directory)
    return SegmentInfo(
        segment=number,
        file=path.name,
        vectors=int(index.ntotal),
        bytes=int(data.nbytes),
        sha256=hashlib.sha256(data).hexdigest(),
        ranges=ranges,
        sources=sources or [],
        raw=raw_name,
        quantizer=quantizer,
        spec=spec,
    )


def read_segment(directory: Path, info: SegmentInfo, dim: int, index_name: str) -> Segment:
    """Read and check a segment file; :class:`CorruptIndexError` naming the index and the file if it is missing,
    truncated, not the file that was committed, or holds other chunks than recorded."""
    path = directory / info.file
    problem = f"index {index_name!r}: segment file {path}"
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise  # the caller tells a file that a newer commit removed from a missing one
    except OSError as err:
        raise CorruptIndexError(f"{problem} is unreadable: {err.strerror}") from None
    if data.nbytes != info.bytes:
        raise CorruptIndexError(f"{problem} has {data.nbytes} bytes, {info.bytes} were committed (truncated?)")
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise CorruptIndexError(f"{problem} is not the file that was committed (its sha256 differs)")
    try:
        index = faiss.deserialize_index(data)
    except RuntimeError as err:
        raise CorruptIndexError(f"{problem} is not a faiss index: {factory.faiss_reason(err)}") from None
    del data
    return _checked_segment(info, index, dim, problem)


def _checked_segment(info: SegmentInfo, index: faiss.Index, dim: int, problem: str) -> Segment:
    if index.d != dim or index.ntotal != info.vectors:
        raise CorruptIndexError(
            f"{problem} holds {index.ntotal} vectors of dimension {index.d}; {info.vectors} of dimension {dim} "
            "were committed"
        )
    ids = factory.stored_ids(index)
    order = np.argsort(ids, kind="stable")
    segment = Segment(info, index, ids[order], order.astype(np.int64))
    outside = ~info.holds(segment.ids)
    if outside.any():
        raise CorruptIndexError(f"{problem} holds chunk {int(segment.ids[outside][0])}, outside the committed ranges")
    factory.prepare_for_lookups(index)
    return segment


def segment_from_index(info: SegmentInfo, index: faiss.Index, dim: int, index_name: str) -> Segment:
    """A :class:`Segment` of an index already in memory (a writer's own new segment)."""
    return _checked_segment(info, index, dim, f"index {index_name!r}: segment {info.file}")


def finalize_segment(directory: Path, info: SegmentInfo) -> None:
    """Give the files of a segment written with ``finalize=False`` their names."""
    for name in (info.file, info.raw):
        if name:
            os.replace(directory / f"{name}.tmp", directory / name)
    sync_directory(directory)


def segment_owners(infos: list[SegmentInfo], chunk_ids: np.ndarray, index_name: str) -> np.ndarray:
    """The segment number whose ranges hold each chunk id; :class:`CorruptIndexError` for one that none holds."""
    owners = np.full(len(chunk_ids), -1, dtype=np.int64)
    for info in infos:
        owners[info.holds(chunk_ids)] = info.segment
    if (owners < 0).any():
        chunk = int(chunk_ids[owners < 0][0])
        raise CorruptIndexError(f"index {index_name!r}: chunk {chunk} of a stored document is in no segment")
    return owners


def _write_durably(path: Path, data: np.ndarray, finalize: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(memoryview(data))
        handle.flush()
        os.fsync(handle.fileno())
    if finalize:
        os.replace(tmp, path)


def _save_array(path: Path, array: np.ndarray, finalize: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    if finalize:
        os.replace(tmp, path)


def ranges_of(chunk_ids: np.ndarray) -> list[list[int]]:
    """Sorted chunk ids as the fewest ``[first, last)`` ranges."""
    if not len(chunk_ids):
        return []
    ids = np.sort(chunk_ids)
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(ids)]))
    return [[int(ids[a]), int(ids[b - 1]) + 1] for a, b in zip(starts, ends, strict=True)]


def merge_ranges(parts: list[list[list[int]]]) -> list[list[int]]:
    """The union of several segments' ranges, coalesced."""
    spans = sorted(span for ranges in parts for span in ranges)
    merged: list[list[int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged
