"""Compaction: merge segments into fewer, drop tombstoned chunks, reclaim disk.

A merge reads its source segments (immutable files) and builds the merged one without holding the writer's
lock, so writes go on meanwhile; then it takes the lock for a moment to commit: the merged file replaces the
sources in one transaction, and tombstones that writes added meanwhile to the sources' chunks move to it (a
merge keeps chunk ids). One compaction runs at a time per index (``.compact.lock``).

What merges when is :mod:`embedsearch.index.merge_policy`. An HNSW merge adds the other segments' vectors to
the largest source instead of rebuilding it (its own tombstones stay until its fraction passes the threshold).
IVF/PQ segments grow from one trained quantizer and merge by concatenating their lists; a full compaction
(``embedsearch index compact``) retrains the quantizer once the index has grown ``retrain_growth`` times past
the vectors it was trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedsearch.errors import CorruptIndexError
from embedsearch.files import write_atomically
from embedsearch.index import factory
from embedsearch.index.merge_policy import (
    CompactionPolicy,
    CompactionReport,
    plan_merges,
    segment_spec,
)
from embedsearch.index.segments import Segment, finalize_segment, merge_ranges, read_segment, write_segment
from embedsearch.index.storage import (
    MANIFEST,
    index_directory,
    quantizer_name,
    read_manifest,
    store_name,
    try_lock,
    write_lock,
)
from embedsearch.index.store import SegmentInfo, Store
from embedsearch.index.tidy import COMPACT_LOCK, remove_unfinished, remove_unreferenced
from embedsearch.runtime import batch_threads_while

RETRAIN_SAMPLE = 262_144  # vectors a retrained quantizer learns from (faiss samples 256 per list anyway)
ADD_BATCH = 65_536


def compact_if_needed(
    name: str, home: str | Path | None = None, *, policy: CompactionPolicy | None = None, lock_timeout: float = 300.0
) -> CompactionReport:
    """Run the merges the policy asks for now (none, usually). Skipped while another compaction runs."""
    directory = index_directory(name, home)
    lock = try_lock(directory, COMPACT_LOCK)
    if lock is None:
        return CompactionReport(skipped="another compaction is running")
    try:
        manifest = read_manifest(directory)
        policy = policy or CompactionPolicy.of(manifest)
        report = CompactionReport()
        groups = plan_merges(_segment_sizes(directory, manifest), policy)
        with batch_threads_while():
            for group in groups:
                _run_merge(directory, manifest, group, policy, report, retrain=False, lock_timeout=lock_timeout)
        return report
    finally:
        lock.release()


def compact_index(
    name: str,
    home: str | Path | None = None,
    *,
    policy: CompactionPolicy | None = None,
    progress: bool = False,
    lock_timeout: float = 300.0,
) -> CompactionReport:
    """Merge every segment into one without tombstones (``embedsearch index compact``), retraining an IVF/PQ
    quantizer once the index has grown past ``retrain_growth`` times its training set; an index in format 1 is
    upgraded first. Waits for a running compaction."""
    from embedsearch.index.upgrade import upgrade_if_needed

    directory = index_directory(name, home)
    with batch_threads_while():
        report = CompactionReport(upgraded=upgrade_if_needed(directory, lock_timeout))
        _compact_all(directory, policy, report, progress, lock_timeout)
    return report


def _compact_all(directory: Path, policy, report: CompactionReport, progress: bool, lock_timeout: float) -> None:
    with _compaction_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        policy = policy or CompactionPolicy.of(manifest)
        sizes = _segment_sizes(directory, manifest)
        retrain = _should_retrain(directory, manifest, policy, sizes)
        if len(sizes) > 1 or any(t for _, _, t in sizes) or retrain:
            group = [n for n, _, _ in sizes]
            _run_merge(
                directory,
                manifest,
                group,
                policy,
                report,
                retrain=retrain,
                lock_timeout=lock_timeout,
                progress=progress,
            )
        else:
            _tidy(directory, manifest, lock_timeout)  # what a compaction killed after its commit left behind


def _tidy(directory: Path, manifest: dict[str, Any], lock_timeout: float) -> None:
    store = _store(directory, manifest, writable=True)
    try:
        with write_lock(directory, lock_timeout):
            remove_unfinished(directory, manifest["epoch"])
            remove_unreferenced(directory, store)
    finally:
        store.close()


def _compaction_lock(directory: Path, timeout: float):
    from embedsearch.index.storage import file_lock

    return file_lock(directory, timeout, COMPACT_LOCK)


def _segment_sizes(directory: Path, manifest: dict[str, Any]) -> list[tuple[int, int, int]]:
    store = _store(directory, manifest)
    try:
        with store.reading():
            tombstones = store.tombstone_counts()
            return [(i.segment, i.vectors, tombstones.get(i.segment, 0)) for i in store.segments()]
    finally:
        store.close()


def _should_retrain(directory: Path, manifest: dict[str, Any], policy: CompactionPolicy, sizes) -> bool:
    if not factory.needs_training(manifest["spec"], manifest["dim"]):
        return False
    store = _store(directory, manifest)
    try:
        trained_on = store.state().get("trained_on") or 0
    finally:
        store.close()
    live = sum(v - t for _, v, t in sizes)
    return trained_on > 0 and live >= policy.retrain_growth * trained_on


def _store(directory: Path, manifest: dict[str, Any], writable: bool = False) -> Store:
    return Store.open(directory / store_name(manifest["epoch"]), manifest["name"], writable=writable)


# ---- one merge -------------------------------------------------------------------------------------------------


@dataclass
class _Merged:
    index: faiss.Index
    ranges: list[list[int]]
    dropped: np.ndarray  # chunk ids of the sources that the merged index no longer holds
    raw: tuple[np.ndarray, np.ndarray] | None
    quantizer: str | None
    retrained: bool
    spec: str | None  # "Flat" for a merged segment under the floor


def _run_merge(
    directory: Path,
    manifest: dict[str, Any],
    group: list[int],
    policy: CompactionPolicy,
    report: CompactionReport,
    *,
    retrain: bool,
    lock_timeout: float,
    progress: bool = False,
) -> None:
    start = time.perf_counter()
    store = _store(directory, manifest, writable=True)
    try:
        with store.reading():
            infos = {i.segment: i for i in store.segments()}
            tombstones, state = store.tombstones(), store.state()
        sources = [read_segment(directory, infos[n], manifest["dim"], manifest["name"]) for n in group if n in infos]
        number = _reserve_segment_number(directory, store, manifest["epoch"], lock_timeout)
        merged = _merge(directory, manifest, sources, tombstones, state, policy, retrain, number, progress)
        info = None
        if merged.index.ntotal:
            info = write_segment(
                directory,
                manifest["epoch"],
                number,
                merged.index,
                merged.ranges,
                raw=merged.raw,
                sources=[s.number for s in sources],
                quantizer=merged.quantizer,
                spec=merged.spec,
                finalize=False,
            )
        committed = _commit_merge(directory, manifest, store, [s.number for s in sources], info, merged, lock_timeout)
    finally:
        store.close()
    if committed:
        report.retrained |= merged.retrained
        report.merges.append(
            {
                "sources": [s.number for s in sources],
                "segment": info.segment if info else None,
                "vectors": int(merged.index.ntotal),
                "dropped": int(len(merged.dropped)),
                "seconds": round(time.perf_counter() - start, 3),
            }
        )


def _reserve_segment_number(directory: Path, store: Store, epoch: int, lock_timeout: float) -> int:
    """A segment number no writer will take; the files a killed compaction left are removed meanwhile."""
    with write_lock(directory, lock_timeout):
        remove_unfinished(directory, epoch)
        with store.transaction():
            number = store.state()["next_segment"]
            store.set_state(next_segment=number + 1)
    return number


def _merge(directory, manifest, sources: list[Segment], tombstones, state, policy, retrain, number, progress):
    spec, dim = manifest["spec"], manifest["dim"]
    dead = {s.number: tombstones.get(s.number, np.zeros(0, dtype=np.int64)) for s in sources}
    live = {s.number: s.ids[~np.isin(s.ids, dead[s.number], assume_unique=True)] for s in sources}
    total = sum(len(ids) for ids in live.values())
    quantizer = state.get("quantizer")
    trains = factory.needs_training(spec, dim) and total >= policy.floor_vectors and (retrain or quantizer is None)
    if trains:
        quantizer = _retrain(directory, manifest, sources, live)
    own = segment_spec(manifest, total, quantizer)
    if own is not None:
        index, quantizer = factory.make_index(own, dim), None
        _add_vectors(index, directory, sources, live, own, progress)
    else:
        index = _grown_index(directory, manifest, sources, dead, live, quantizer, policy, trains, progress)
    held = np.sort(factory.stored_ids(index))
    every = np.sort(np.concatenate([s.ids for s in sources])) if sources else np.zeros(0, dtype=np.int64)
    raw = None if factory.keeps_exact_vectors(own or spec, dim) else (held, _raw_rows(directory, sources, held))
    ranges = merge_ranges([s.info.ranges for s in sources])
    dropped = np.setdiff1d(every, held, assume_unique=True)
    return _Merged(index, ranges, dropped, raw, quantizer, trains, own)


def _grown_index(directory, manifest, sources, dead, live, quantizer, policy, retrained, progress) -> faiss.Index:
    """A merged index in the index's spec: IVF lists concatenated (sources of the same quantizer), or the largest
    HNSW source with the others' vectors added, or else built afresh; what is left is added."""
    spec, dim = manifest["spec"], manifest["dim"]
    grown = [s for s in sources if s.info.spec is None]
    if quantizer is not None and not retrained and faiss.try_extract_index_ivf(factory.make_index(spec, dim)):
        kept = [s for s in grown if s.info.quantizer == quantizer]
        index = _concatenated_ivf(directory / quantizer, kept, dead)
        rest = [s for s in sources if s not in kept]
    elif factory.is_hnsw(spec, dim) and _base(grown, dead, policy) is not None:
        base = _base(grown, dead, policy)
        index, rest = base.index, [s for s in sources if s is not base]
    else:
        index = factory.load_index_file(directory / quantizer) if quantizer else factory.make_index(spec, dim)
        rest = sources
    _add_vectors(index, directory, rest, live, spec, progress)
    return index


def _base(sources: list[Segment], dead, policy: CompactionPolicy) -> Segment | None:
    """The largest source, if it may keep its own tombstones (an HNSW graph is added to, not rebuilt)."""
    largest = max(sources, key=lambda s: len(s), default=None)
    if largest is None or not len(largest):
        return None
    return largest if len(dead[largest.number]) / len(largest) <= policy.max_deleted_fraction else None


def _concatenated_ivf(quantizer_file: Path, sources: list[Segment], dead) -> faiss.Index:
    merged = factory.load_index_file(quantizer_file)
    for source in sources:
        faiss.extract_index_ivf(source.index).set_direct_map_type(faiss.DirectMap.NoMap)
        if len(dead[source.number]):
            source.index.remove_ids(faiss.IDSelectorBatch(dead[source.number]))
        merged.merge_from(source.index, 0)
    return merged


def _add_vectors(index, directory: Path, sources: list[Segment], live, spec: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    total = sum(len(live[s.number]) for s in sources)
    with tqdm(total=total, unit="vector", desc="compacting", disable=not progress) as bar:
        for source in sources:
            ids = live[source.number]
            for first in range(0, len(ids), ADD_BATCH):
                part = ids[first : first + ADD_BATCH]
                factory.train_and_add(index, part, source.vectors(part, directory), spec)
                bar.update(len(part))


def _raw_rows(directory: Path, sources: list[Segment], ids: np.ndarray) -> np.ndarray:
    rows = np.empty((len(ids), sources[0].index.d), dtype=np.float32)
    for source in sources:
        mine = source.contains(ids)
        if mine.any():
            rows[mine] = source.vectors(ids[mine], directory)
    return rows


def _retrain(directory: Path, manifest: dict[str, Any], sources: list[Segment], live) -> str:
    """Train a new quantizer on a seeded sample of the live vectors; returns its file name."""
    everything = [(s, live[s.number]) for s in sources]
    total = sum(len(ids) for _, ids in everything)
    rng = np.random.default_rng(0)
    share = min(1.0, RETRAIN_SAMPLE / max(total, 1))
    sample = [
        s.vectors(np.sort(rng.choice(ids, max(1, int(len(ids) * share)), replace=False)), directory)
        for s, ids in everything
        if len(ids)
    ]
    index = factory.make_index(manifest["spec"], manifest["dim"])
    factory.train(index, np.concatenate(sample), manifest["spec"])
    name = _next_quantizer_name(directory, manifest["epoch"])
    write_atomically(directory / name, faiss.serialize_index(index).tobytes())
    return name


def _next_quantizer_name(directory: Path, epoch: int) -> str:
    taken = [int(p.name.split(".")[2]) for p in directory.glob(f"quantizer.{epoch}.*.faiss")]
    return quantizer_name(epoch, max(taken, default=0) + 1)


def _commit_merge(directory, manifest, store: Store, sources: list[int], info, merged: _Merged, lock_timeout) -> bool:
    """Replace ``sources`` by the merged segment in one transaction, unless the index was rebuilt meanwhile."""
    with write_lock(directory, lock_timeout):
        try:
            same_epoch = read_manifest(directory)["epoch"] == manifest["epoch"]
        except CorruptIndexError:
            same_epoch = False
        if not same_epoch:
            _discard(directory, info)
            return False
        if info is not None:
            finalize_segment(directory, info)
        with store.transaction():
            target = info.segment if info else -1
            store.move_tombstones(sources, target, merged.dropped)
            store.remove_segments(sources)
            if info is not None:
                store.add_segment(info)
            state = store.state()
            extra = {"quantizer": merged.quantizer, "trained_on": _trained_on(merged)} if merged.retrained else {}
            store.set_state(generation=state["generation"] + 1, updated=_now(), **extra)
        remove_unreferenced(directory, store)
    return True


def _trained_on(merged: _Merged) -> int:
    return int(merged.index.ntotal)


def _discard(directory: Path, info: SegmentInfo | None) -> None:
    if info is None:
        return
    for name in (info.file, info.raw):
        if name:
            (directory / f"{name}.tmp").unlink(missing_ok=True)


def _now() -> str:
    from embedsearch.index.storage import now

    return now()


def manifest_text(directory: Path) -> dict[str, Any]:
    """The manifest's JSON as it is, unchecked (for the upgrade of older formats)."""
    return json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
