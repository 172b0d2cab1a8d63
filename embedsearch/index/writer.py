"""Build, update and delete: every write makes a new generation and switches to it atomically."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedsearch.data import Chunk, Document, chunk_spans, load_image
from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import EncoderMismatchError, IndexExistsError, InvalidInputError, UnsupportedModalityError
from embedsearch.index import factory
from embedsearch.index.docstore import DocStore
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.storage import (
    commit_manifest,
    generation_paths,
    index_directory,
    list_index_names,
    now,
    read_manifest,
    remove_stale_files,
    sync_file,
    write_lock,
)
from embedsearch.runtime import use_batch_threads

DEFAULT_LOCK_TIMEOUT = 300.0
IMAGE_GROUP = 256  # images decoded at a time while encoding: bounds memory, whatever the folder's size


@dataclass(frozen=True)
class ChunkingPolicy:
    """How documents become chunks: windows of the encoder's max tokens sharing ``overlap`` tokens (default:
    an eighth of the window, 31 for MiniLM), or (with ``enabled=False``) one chunk per document that the model
    truncates."""

    enabled: bool = True
    overlap: int | None = None

    def resolved(self, max_tokens: int) -> ChunkingPolicy:
        """This policy with a concrete overlap; :class:`InvalidInputError` if it does not fit the window."""
        overlap = max_tokens // 8 if self.overlap is None else self.overlap
        if not 0 <= overlap < max_tokens:
            raise InvalidInputError(f"chunk overlap must be between 0 and {max_tokens - 1} tokens, got {overlap}")
        return ChunkingPolicy(self.enabled, overlap)


@dataclass
class WriteReport:
    """What a write did. ``timings`` has seconds per phase (chunk, encode, store, faiss)."""

    manifest: dict[str, Any]
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    chunks_encoded: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def build_index(
    name: str,
    documents: Sequence[Document],
    encoder: Encoder | str = "minilm",
    *,
    spec: str = "auto",
    home: str | Path | None = None,
    overwrite: bool = False,
    chunking: ChunkingPolicy = ChunkingPolicy(),
    memory_budget: int | None = None,
    progress: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> WriteReport:
    """Create index ``name`` from ``documents`` (ids must be unique).

    Raises :class:`IndexExistsError` if it exists and ``overwrite`` is false, :class:`InvalidInputError` for
    a bad spec or no documents, and :class:`UnknownEncoderError` for an unknown encoder.
    """
    if not documents:
        raise InvalidInputError("no documents to index")
    encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
    content = _content_of(documents, encoder)
    chunking = chunking.resolved(encoder.max_tokens)
    if spec != "auto":
        factory.make_index(spec, encoder.dim)  # a bad spec fails now, not after encoding everything
    directory = index_directory(name, home)
    if not overwrite and name in list_index_names(home):
        raise IndexExistsError(f"index {name!r} already exists in {directory.parent}; pass --overwrite to replace it")
    use_batch_threads()
    with write_lock(directory, lock_timeout):
        previous = read_manifest(directory) if name in list_index_names(home) else None
        if previous and not overwrite:
            raise IndexExistsError(f"index {name!r} was created meanwhile; pass --overwrite to replace it")
        report = WriteReport(manifest={})
        chunks, vectors = _encode(documents, encoder, chunking, progress, report)
        spec = factory.choose_spec(len(chunks), encoder.dim, memory_budget) if spec == "auto" else spec
        generation = (previous["generation"] if previous else 0) + 1
        with _GenerationWriter(directory, generation, encoder.dim, None) as writer:
            index = factory.make_index(spec, encoder.dim)
            ids = writer.put(documents, chunks, vectors, report)
            _timed(report, "faiss", lambda: factory.train_and_add(index, ids, vectors, spec))
            manifest = _new_manifest(name, encoder, spec, chunking, content, previous)
            report.manifest = writer.commit(index, manifest, report)
        report.added = [d.id for d in documents]
    return report


def add_documents(
    name: str,
    documents: Sequence[Document],
    *,
    home: str | Path | None = None,
    encoder: Encoder | str | None = None,
    progress: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> WriteReport:
    """Add or replace documents by id (upsert). Unchanged documents (same text and metadata; for images, the
    same file bytes at the same path) are not re-encoded. Raises :class:`EncoderMismatchError` if ``encoder``
    is not the index's encoder, and :class:`InvalidInputError` for images added to a text index or the reverse."""
    directory = index_directory(name, home)
    _matching_encoder(read_manifest(directory), encoder)  # fail before waiting for the lock or encoding
    use_batch_threads()
    with write_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        encoder = _matching_encoder(manifest, encoder)
        _check_content(manifest, documents, encoder)
        report = WriteReport(manifest=manifest)
        with _GenerationWriter.next_of(directory, manifest) as writer:
            stored = writer.store.hashes([d.id for d in documents])
            fresh = [d for d in documents if stored.get(d.id) != d.content_hash()]
            report.unchanged = [d.id for d in documents if stored.get(d.id) == d.content_hash()]
            report.updated = [d.id for d in fresh if d.id in stored]
            report.added = [d.id for d in fresh if d.id not in stored]
            if not fresh:
                writer.discard()
                return report  # nothing changed: no new generation
            index = writer.load_vectors()
            removed = np.array(writer.store.delete_documents(report.updated), dtype=np.int64)
            chunks, vectors = _encode(fresh, encoder, _policy(manifest), progress, report)
            ids = writer.put(fresh, chunks, vectors, report)
            index = writer.apply(index, manifest["spec"], removed, ids, vectors, report)
            report.manifest = writer.commit(index, manifest, report)
    return report


def delete_documents(
    name: str, ids: Sequence[str], *, home: str | Path | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> WriteReport:
    """Delete documents by id; ids that are not stored are reported in ``missing``."""
    directory = index_directory(name, home)
    read_manifest(directory)  # an unknown index fails here, without creating its folder
    with write_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        report = WriteReport(manifest=manifest)
        with _GenerationWriter.next_of(directory, manifest) as writer:
            present = writer.store.hashes(list(ids))
            report.deleted = [i for i in ids if i in present]
            report.missing = [i for i in ids if i not in present]
            index = writer.load_vectors()
            removed = np.array(writer.store.delete_documents(report.deleted), dtype=np.int64)
            nothing = np.zeros((0, manifest["dim"]), np.float32)
            index = writer.apply(index, manifest["spec"], removed, np.zeros(0, np.int64), nothing, report)
            report.manifest = writer.commit(index, manifest, report)
    return report


class _GenerationWriter:
    """Writes generation ``generation`` of an index beside the current one, then commits it."""

    def __init__(self, directory: Path, generation: int, dim: int, previous: Path | None) -> None:
        remove_stale_files(directory, keep={generation - 1, generation - 2})
        self.directory = directory
        self.generation = generation
        self.store_path, self.faiss_path = generation_paths(directory, generation)
        self.store = DocStore.open_writable(self.store_path, dim, copy_from=previous)
        self.previous_faiss = generation_paths(directory, generation - 1)[1]

    def __enter__(self) -> _GenerationWriter:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        """On an error, close and remove this generation's files: the manifest still names the old ones."""
        if error_type is not None:
            self.discard()

    def discard(self) -> None:
        """Close and remove this generation's files: the manifest still names the previous ones."""
        self.store.close()
        remove_stale_files(self.directory, keep={self.generation - 1, self.generation - 2})

    @classmethod
    def next_of(cls, directory: Path, manifest: dict[str, Any]) -> _GenerationWriter:
        previous_store = generation_paths(directory, manifest["generation"])[0]
        return cls(directory, manifest["generation"] + 1, manifest["dim"], previous_store)

    def load_vectors(self) -> faiss.Index:
        return faiss.read_index(str(self.previous_faiss))

    def put(self, documents: Sequence[Document], chunks: list[Chunk], vectors: np.ndarray, report: WriteReport):
        start = time.perf_counter()
        by_doc: dict[str, list[int]] = {}
        for position, chunk in enumerate(chunks):
            by_doc.setdefault(chunk.doc_id, []).append(position)
        ids: list[int] = []
        for document in documents:
            rows = by_doc[document.id]
            ids += self.store.put_document(document, [chunks[i] for i in rows], vectors[rows])
        order = np.array([p for d in documents for p in by_doc[d.id]], dtype=np.int64)
        report.timings["store"] = report.timings.get("store", 0.0) + time.perf_counter() - start
        return _reorder(np.array(ids, dtype=np.int64), order)

    def apply(self, index, spec: str, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray, report: WriteReport):
        """Remove then add vectors; rebuild from the store where the index type cannot remove (HNSW)."""
        start = time.perf_counter()
        if factory.remove_ids(index, removed):
            factory.train_and_add(index, ids, vectors, spec)
        else:
            index = self._rebuild(spec)
        report.timings["faiss"] = report.timings.get("faiss", 0.0) + time.perf_counter() - start
        return index

    def _rebuild(self, spec: str) -> faiss.Index:
        self.store.commit()
        ids, vectors = self.store.all_vectors()
        index = factory.make_index(spec, self.store.dim)
        factory.train_and_add(index, ids, vectors, spec)
        return index

    def commit(self, index: faiss.Index, manifest: dict[str, Any], report: WriteReport) -> dict[str, Any]:
        self.store.commit()
        counts = {"count": self.store.count(), "chunks": self.store.chunk_count()}
        self.store.close()
        tmp = self.faiss_path.with_name(self.faiss_path.name + ".tmp")
        faiss.write_index(index, str(tmp))
        sync_file(tmp)
        shutil.move(tmp, self.faiss_path)
        manifest = {**manifest, **counts, "generation": self.generation}
        commit_manifest(self.directory, manifest)
        return read_manifest(self.directory)


def _encode(documents, encoder: Encoder, chunking: ChunkingPolicy, progress: bool, report: WriteReport):
    if documents and documents[0].kind == "image":
        return _encode_images(documents, encoder, progress, report)
    start = time.perf_counter()
    chunks = _chunks_of(documents, encoder, chunking)
    report.timings["chunk"] = time.perf_counter() - start
    text_of = {d.id: d.text for d in documents}
    texts = [text_of[c.doc_id][c.start : c.end] for c in chunks]
    start = time.perf_counter()
    label = f"encoding {len(documents)} docs as {len(chunks)} chunks" if progress else False
    vectors = encoder.encode_text(texts, progress=label) if texts else np.zeros((0, encoder.dim), np.float32)
    report.timings["encode"] = time.perf_counter() - start
    report.chunks_encoded = len(chunks)
    return chunks, vectors


def _encode_images(documents: Sequence[Document], encoder: Encoder, progress: bool, report: WriteReport):
    """One vector per image (no chunking); the chunk spans the whole snippet so that it is the hit's text."""
    start = time.perf_counter()
    chunks = [Chunk(d.id, 0, len(d.text)) for d in documents]
    parts = [np.zeros((0, encoder.dim), np.float32)]
    for first in range(0, len(documents), IMAGE_GROUP):
        group = documents[first : first + IMAGE_GROUP]
        label = f"encoding images {first + 1}-{first + len(group)} of {len(documents)}" if progress else False
        parts.append(encoder.encode_image([_pixels_of(d) for d in group], progress=label))
    vectors = np.concatenate(parts)
    report.timings["encode"] = time.perf_counter() - start
    report.chunks_encoded = len(chunks)
    return chunks, vectors


def _pixels_of(document: Document):
    try:
        return load_image(document.metadata["image_path"])
    except ValueError as err:  # the file changed or vanished since it was read
        raise InvalidInputError(f"{document.metadata['image_path']}: {err}") from None


def _chunks_of(documents: Sequence[Document], encoder: Encoder, chunking: ChunkingPolicy) -> list[Chunk]:
    if not chunking.enabled:
        return [Chunk(d.id, 0, len(d.text)) for d in documents]
    texts = [d.text for d in documents]
    chunks = []
    for start in range(0, len(texts), 1024):
        spans_of = encoder.token_spans_batch(texts[start : start + 1024])
        for document, spans in zip(documents[start : start + 1024], spans_of, strict=True):
            windows = chunk_spans(spans, len(document.text), encoder.max_tokens, chunking.overlap)
            chunks += [Chunk(document.id, a, b) for a, b in windows]
    return chunks


def _reorder(ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Chunk ids in the order of ``chunks``/``vectors`` (``put`` stores them grouped by document)."""
    out = np.empty_like(ids)
    out[order] = ids
    return out


def _matching_encoder(manifest: dict[str, Any], encoder: Encoder | str | None) -> Encoder:
    expected = manifest["encoder"]
    if not isinstance(encoder, Encoder):
        encoder = get_encoder(expected["name"] if encoder is None else encoder)
    if encoder.fingerprint != expected["fingerprint"] or encoder.dim != manifest["dim"]:
        raise EncoderMismatchError(
            f"encoder {encoder.name!r} (fingerprint {encoder.fingerprint}, dim {encoder.dim}) does not match index "
            f"{manifest['name']!r}, built with {expected['name']!r} (fingerprint {expected['fingerprint']}, "
            f"dim {manifest['dim']})"
        )
    return encoder


def _policy(manifest: dict[str, Any]) -> ChunkingPolicy:
    chunking = manifest["chunking"]
    return ChunkingPolicy(enabled=chunking["enabled"], overlap=chunking["overlap"])


def _timed(report: WriteReport, phase: str, work) -> None:
    start = time.perf_counter()
    work()
    report.timings[phase] = report.timings.get(phase, 0.0) + time.perf_counter() - start


def _content_of(documents: Sequence[Document], encoder: Encoder) -> str:
    """What an index of ``documents`` holds, "text" or "image"; one index never mixes them."""
    kinds = {d.kind for d in documents}
    if len(kinds) > 1:
        raise InvalidInputError("cannot index text documents and images together; build one index for each")
    content = kinds.pop()
    if content not in encoder.modalities:
        raise UnsupportedModalityError(
            f"encoder {encoder.name!r} cannot embed {content}s; it embeds {' and '.join(sorted(encoder.modalities))}"
        )
    return content


def _check_content(manifest: dict[str, Any], documents: Sequence[Document], encoder: Encoder) -> None:
    expected = manifest["content"]
    if documents and _content_of(documents, encoder) != expected:
        plural = {"text": "text documents", "image": "images"}
        raise InvalidInputError(
            f"index {manifest['name']!r} holds {plural[expected]}; cannot add {plural[documents[0].kind]} to it"
        )


def _new_manifest(
    name, encoder: Encoder, spec: str, chunking: ChunkingPolicy, content: str, previous
) -> dict[str, Any]:
    return {
        "name": name,
        "content": content,
        "encoder": encoder.describe(),
        "dim": encoder.dim,
        "metric": factory.METRIC,
        "spec": spec,
        "search": SearchKnobs().__dict__,
        "chunking": {"enabled": chunking.enabled, "overlap": chunking.overlap, "max_tokens": encoder.max_tokens},
        "created": previous["created"] if previous else now(),
    }
