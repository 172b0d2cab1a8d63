"""Build, add (upsert) and delete: each write costs what it changes.

- ``build_index`` writes a new epoch (store, one segment, a trained quantizer for IVF/PQ specs) beside the
  current one and commits it by replacing ``manifest.json``.
- ``add_documents`` writes one new segment with the new and changed documents' chunks, then one transaction
  that records it, their rows, and tombstones for the replaced documents' old chunks.
- ``delete_documents`` writes tombstones only; ids that are not stored write nothing.

After a write, :func:`embedsearch.index.compaction.compact_if_needed` merges segments when the policy says so
(``compact=False`` leaves that to the caller: the HTTP server runs it in the background).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedsearch.data import Document
from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import CorruptIndexError, IndexExistsError, InvalidInputError
from embedsearch.files import write_atomically
from embedsearch.index import factory
from embedsearch.index.compaction import compact_if_needed
from embedsearch.index.encoding import (
    ChunkingPolicy,
    Encoded,
    check_content,
    check_unique,
    content_of,
    encode_documents,
)
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.identity import encoder_of
from embedsearch.index.lexical import LexicalSettings, settings_of
from embedsearch.index.merge_policy import DEFAULT_POLICY, CompactionPolicy, CompactionReport, segment_spec
from embedsearch.index.reader import describe
from embedsearch.index.segments import ranges_of, segment_owners, write_segment
from embedsearch.index.storage import (
    FORMAT_VERSION,
    index_directory,
    list_index_names,
    now,
    quantizer_name,
    read_manifest,
    remove_other_epochs,
    store_name,
    write_lock,
    write_manifest,
)
from embedsearch.index.store import SegmentInfo, Store
from embedsearch.index.tidy import remove_unreferenced
from embedsearch.runtime import batch_threads_while

DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_CHUNKING = ChunkingPolicy()


@dataclass
class WriteReport:
    """What a write did. ``manifest`` is the index's description after it (as ``index info`` shows it);
    ``timings`` has seconds per phase (chunk, encode, segment, commit); ``compaction`` what merged afterwards."""

    manifest: dict[str, Any]
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    chunks_encoded: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    compaction: CompactionReport | None = None


def build_index(
    name: str,
    documents: Sequence[Document],
    encoder: Encoder | str = "minilm",
    *,
    spec: str = "auto",
    home: str | Path | None = None,
    overwrite: bool = False,
    chunking: ChunkingPolicy = DEFAULT_CHUNKING,
    memory_budget: int | None = None,
    compaction: CompactionPolicy = DEFAULT_POLICY,
    lexical: LexicalSettings | None | str = "auto",
    progress: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> WriteReport:
    """Create index ``name`` from ``documents`` (ids must be unique).

    ``lexical``: the settings of the lexical (BM25) side; ``"auto"`` gives text indexes the English defaults
    and image indexes none; ``None`` builds a dense-only index.

    Raises :class:`IndexExistsError` if it exists and ``overwrite`` is false, :class:`InvalidInputError` for
    a bad spec or no documents, and :class:`UnknownEncoderError` for an unknown encoder.
    """
    if not documents:
        raise InvalidInputError("no documents to index")
    check_unique(documents)
    encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
    content = content_of(documents, encoder)
    lexical = _lexical_settings(lexical, content)
    chunking = chunking.resolved(encoder.max_tokens)
    if spec != "auto":
        factory.make_index(spec, encoder.dim)  # a bad spec fails now, not after encoding everything
    directory = index_directory(name, home)
    if not overwrite and name in list_index_names(home):
        raise IndexExistsError(f"index {name!r} already exists in {directory.parent}; pass --overwrite to replace it")
    with batch_threads_while(), write_lock(directory, lock_timeout):
        previous = _previous_manifest(directory, name, home)
        if previous and not overwrite:
            raise IndexExistsError(f"index {name!r} was created meanwhile; pass --overwrite to replace it")
        report = WriteReport(manifest={})
        encoded = _encoded(documents, encoder, chunking, progress, report)
        spec = factory.choose_spec(len(encoded.chunks), encoder.dim, memory_budget) if spec == "auto" else spec
        epoch = (previous.get("epoch", 0) if previous else 0) + 1
        manifest = _new_manifest(name, encoder, spec, chunking, content, compaction, epoch, previous)
        manifest["lexical"] = lexical.to_dict() if lexical else None
        generation = _previous_generation(directory, previous)
        report.manifest = _write_epoch(directory, manifest, documents, encoded, report, generation)
        report.added = [d.id for d in documents]
    return report


def _lexical_settings(lexical: LexicalSettings | None | str, content: str) -> LexicalSettings | None:
    if lexical == "auto":
        return LexicalSettings() if content == "text" else None
    if lexical is not None and content != "text":
        raise InvalidInputError("an image index has no lexical side: build it without lexical settings")
    if isinstance(lexical, str):
        raise InvalidInputError(f"lexical must be 'auto', None or LexicalSettings, got {lexical!r}")
    return lexical.checked() if lexical else None


def _previous_manifest(directory: Path, name: str, home) -> dict[str, Any] | None:
    """The manifest being replaced (a broken or older-format one counts as nothing to keep, but its epoch)."""
    if name not in list_index_names(home):
        return None
    try:
        return read_manifest(directory)
    except CorruptIndexError:
        return {"epoch": _epoch_on_disk(directory)}


def _epoch_on_disk(directory: Path) -> int:
    try:
        epoch = json.loads((directory / "manifest.json").read_text(encoding="utf-8")).get("epoch", 0)
        return epoch if isinstance(epoch, int) else 0
    except (OSError, ValueError, AttributeError):
        return 0


def _previous_generation(directory: Path, previous: dict[str, Any] | None) -> int:
    """The generation of the index being replaced, so that generations keep growing across rebuilds."""
    if not previous or "store" not in previous:
        return 0
    try:
        store = Store.open(directory / previous["store"], directory.name)
    except CorruptIndexError:
        return 0
    try:
        return store.generation()
    except CorruptIndexError:
        return 0
    finally:
        store.close()


def _write_epoch(
    directory: Path,
    manifest: dict[str, Any],
    documents: Sequence[Document],
    encoded: Encoded,
    report: WriteReport,
    generation: int,
) -> dict[str, Any]:
    """Write store, segment and quantizer of a new epoch, then commit it with the manifest."""
    epoch, dim, spec = manifest["epoch"], manifest["dim"], manifest["spec"]
    for stale in (directory / store_name(epoch), directory / f"{store_name(epoch)}-wal"):
        stale.unlink(missing_ok=True)  # left by a build of this epoch that crashed
    start = time.perf_counter()
    ids = np.arange(len(encoded.chunks), dtype=np.int64)
    floor = CompactionPolicy.of(manifest).floor_vectors
    quantizer = _train_quantizer(directory, epoch, spec, dim, encoded.vectors, floor)
    info = _segment(directory, manifest, 1, ids, encoded.vectors, quantizer)
    report.timings["segment"] = time.perf_counter() - start
    start = time.perf_counter()
    store = Store.create(directory / store_name(epoch), manifest["name"], settings_of(manifest))
    try:
        with store.transaction():
            store.put_documents(documents, encoded.chunks, 0, encoded.thumbnails)
            store.add_segment(info)
            trained_on = len(ids) if quantizer else None
            state = _state(generation, len(documents), len(ids), len(ids), 2, quantizer, trained_on)
            store.set_state(**state)
        store.checkpoint()
        described = describe(manifest, store.state(), store.segments(), {})
    finally:
        store.close()
    write_manifest(directory, manifest)
    remove_other_epochs(directory, epoch)
    report.timings["commit"] = time.perf_counter() - start
    return {**described, "name": manifest["name"]}


def _state(generation, documents, chunks, next_chunk, next_segment, quantizer, trained_on) -> dict[str, Any]:
    return {
        "generation": generation + 1,
        "documents": documents,
        "chunks": chunks,
        "next_chunk": next_chunk,
        "next_segment": next_segment,
        "quantizer": quantizer,
        "trained_on": trained_on,
        "updated": now(),
    }


def _train_quantizer(directory: Path, epoch: int, spec: str, dim: int, vectors: np.ndarray, floor: int) -> str | None:
    """For specs that train (IVF, PQ): train once, on the first segment of at least ``floor`` vectors (smaller
    segments are flat), and keep the empty trained index for later segments."""
    if not factory.needs_training(spec, dim) or len(vectors) < floor:
        return None
    index = factory.make_index(spec, dim)
    factory.train(index, vectors, spec)
    name = quantizer_name(epoch, 1)
    write_atomically(directory / name, faiss.serialize_index(index).tobytes())
    return name


def _segment(
    directory: Path, manifest: dict[str, Any], number: int, ids: np.ndarray, vectors: np.ndarray, quantizer: str | None
) -> SegmentInfo:
    """Write segment ``number`` of ``ids``/``vectors``: in the index's spec (from its trained quantizer where it
    has one), or flat when it is smaller than the policy's floor (a buffer, merged later; a flat scan of a few
    thousand vectors costs less than an HNSW search)."""
    dim, spec = manifest["dim"], manifest["spec"]
    own = segment_spec(manifest, len(ids), quantizer)
    if own is not None:
        index, quantizer = factory.make_index(own, dim), None
    else:
        index = factory.load_index_file(directory / quantizer) if quantizer else factory.make_index(spec, dim)
    factory.train_and_add(index, ids, vectors, own or spec)
    raw = None if factory.keeps_exact_vectors(own or spec, dim) else (ids, vectors)
    return write_segment(
        directory, manifest["epoch"], number, index, ranges_of(ids), raw=raw, quantizer=quantizer, spec=own
    )


def add_documents(
    name: str,
    documents: Sequence[Document],
    *,
    home: str | Path | None = None,
    encoder: Encoder | str | None = None,
    progress: bool = False,
    compact: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> WriteReport:
    """Add or replace documents by id (upsert). Unchanged documents (same text and metadata; for images, the
    same file bytes at the same path) are not re-encoded. Raises :class:`EncoderMismatchError` if ``encoder``
    is not the index's encoder, and :class:`InvalidInputError` for images added to a text index or the reverse,
    or for an id given twice."""
    directory = index_directory(name, home)
    check_unique(documents)
    encoder = encoder_of(read_manifest(directory), encoder)  # fail before waiting for the lock or encoding
    with batch_threads_while(), write_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        encoder = encoder_of(manifest, encoder)
        check_content(manifest, documents, encoder)
        report = _upsert(directory, manifest, documents, encoder, progress)
    if compact and (report.added or report.updated):
        report.compaction = compact_if_needed(name, home=home, lock_timeout=lock_timeout)
    return report


def _upsert(directory: Path, manifest: dict[str, Any], documents, encoder: Encoder, progress: bool) -> WriteReport:
    store = _open_store(directory, manifest)
    try:
        stored = store.hashes([d.id for d in documents])
        fresh = [d for d in documents if stored.get(d.id) != d.content_hash()]
        report = WriteReport(manifest={}, unchanged=[d.id for d in documents if stored.get(d.id) == d.content_hash()])
        report.updated = [d.id for d in fresh if d.id in stored]
        report.added = [d.id for d in fresh if d.id not in stored]
        if not fresh:
            report.manifest = _described(manifest, store)  # nothing changed: no new generation
            return report
        encoded = _encoded(fresh, encoder, ChunkingPolicy.of(manifest), progress, report)
        state = store.state()
        ids = np.arange(state["next_chunk"], state["next_chunk"] + len(encoded.chunks), dtype=np.int64)
        start = time.perf_counter()
        info = _segment(directory, manifest, state["next_segment"], ids, encoded.vectors, state.get("quantizer"))
        report.timings["segment"] = time.perf_counter() - start
        _commit(
            store,
            directory,
            info,
            report,
            lambda: store.put_documents(fresh, encoded.chunks, int(ids[0]), encoded.thumbnails),
        )
        report.manifest = _described(manifest, store)
        return report
    finally:
        store.close()


def _commit(store: Store, directory: Path, info: SegmentInfo | None, report: WriteReport, put=None) -> None:
    """One transaction: tombstones for the replaced or deleted documents, the new rows and segment, the state."""
    start = time.perf_counter()
    try:
        with store.transaction():
            state = store.state()
            removed = store.remove_documents(report.updated + report.deleted)
            if len(removed):
                store.add_tombstones(removed, segment_owners(store.segments(), removed, store.index_name))
            added_chunks = 0
            if info is not None:
                put()
                store.add_segment(info)
                added_chunks = report.chunks_encoded
            new = len(report.added) - len(report.deleted)
            store.set_state(
                generation=state["generation"] + 1,
                documents=state["documents"] + new,
                chunks=state["chunks"] + added_chunks - len(removed),
                next_chunk=state["next_chunk"] + (info.vectors if info else 0),
                next_segment=state["next_segment"] + (1 if info else 0),
                updated=now(),
            )
    except BaseException:
        if info is not None:
            (directory / info.file).unlink(missing_ok=True)
            if info.raw:
                (directory / info.raw).unlink(missing_ok=True)
        raise
    remove_unreferenced(directory, store)
    report.timings["commit"] = time.perf_counter() - start


def delete_documents(
    name: str,
    ids: Sequence[str],
    *,
    home: str | Path | None = None,
    compact: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> WriteReport:
    """Delete documents by id (tombstones only); ids that are not stored are reported in ``missing``, and when
    none is stored nothing is written."""
    directory = index_directory(name, home)
    read_manifest(directory)  # an unknown index fails here, without creating its folder
    with write_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        store = _open_store(directory, manifest)
        try:
            present = store.hashes(list(ids))
            report = WriteReport(manifest={}, deleted=[i for i in dict.fromkeys(ids) if i in present])
            report.missing = [i for i in dict.fromkeys(ids) if i not in present]
            if report.deleted:
                _commit(store, directory, None, report)
            report.manifest = _described(manifest, store)
        finally:
            store.close()
    if compact and report.deleted:
        report.compaction = compact_if_needed(name, home=home, lock_timeout=lock_timeout)
    return report


def _open_store(directory: Path, manifest: dict[str, Any]) -> Store:
    store = Store.open(directory / store_name(manifest["epoch"]), manifest["name"], writable=True)
    try:
        return store.use_lexical(settings_of(manifest))
    except BaseException:
        store.close()
        raise


def _described(manifest: dict[str, Any], store: Store) -> dict[str, Any]:
    return describe(manifest, store.state(), store.segments(), store.tombstone_counts())


def _encoded(documents, encoder: Encoder, chunking: ChunkingPolicy, progress: bool, report: WriteReport) -> Encoded:
    encoded = encode_documents(documents, encoder, chunking, progress)
    report.timings.update(encoded.timings)
    report.chunks_encoded = len(encoded.chunks)
    return encoded


def _new_manifest(
    name,
    encoder: Encoder,
    spec: str,
    chunking: ChunkingPolicy,
    content: str,
    compaction: CompactionPolicy,
    epoch,
    previous,
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "content": content,
        "encoder": encoder.describe(),
        "dim": encoder.dim,
        "metric": factory.METRIC,
        "spec": spec,
        "search": SearchKnobs().__dict__,
        "chunking": {"enabled": chunking.enabled, "overlap": chunking.overlap, "max_tokens": encoder.max_tokens},
        "compaction": compaction.settings(),
        "epoch": epoch,
        "store": store_name(epoch),
        "created": previous["created"] if previous and "created" in previous else now(),
    }
