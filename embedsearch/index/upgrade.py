"""Upgrading an index written in format 1 (a copy of the whole store and faiss file per generation) in place.

Format 1 kept ``docs.<g>.sqlite`` (documents, and chunks with their vectors) and ``vectors.<g>.faiss`` per
generation ``g``. Its chunk ids are kept, so its faiss file becomes segment 1 of epoch 1 as it is. Image
documents lose the absolute ``image_path`` metadata of format 1 and get a thumbnail (when the file is still
there). The new epoch is committed by replacing the manifest, like a build: a crash leaves format 1.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedsearch.data import Chunk, Document, load_image
from embedsearch.data.images import thumbnail
from embedsearch.errors import CorruptIndexError
from embedsearch.index import factory
from embedsearch.index.lexical import LexicalSettings, settings_of
from embedsearch.index.merge_policy import DEFAULT_POLICY
from embedsearch.index.segments import ranges_of, write_segment
from embedsearch.index.storage import MANIFEST, now, remove_other_epochs, store_name, write_lock, write_manifest
from embedsearch.index.store import Store


def upgrade_if_needed(directory: Path, lock_timeout: float) -> bool:
    """Upgrade the index in ``directory`` if it is in format 1; returns whether it was."""
    if _raw_manifest(directory).get("format_version") != 1:
        return False
    with write_lock(directory, lock_timeout):
        old = _raw_manifest(directory)
        if old.get("format_version") != 1:
            return False
        _upgrade(directory, old)
    return True


def _raw_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _upgrade(directory: Path, old: dict[str, Any]) -> None:
    generation = old["generation"]
    documents, chunks, first_chunks = _old_documents(directory / f"docs.{generation}.sqlite", old["content"])
    index = faiss.read_index(str(directory / f"vectors.{generation}.faiss"))
    ids = np.sort(factory.stored_ids(index))
    manifest = _new_manifest(directory, old)
    raw = None
    if not factory.keeps_exact_vectors(manifest["spec"], manifest["dim"]):
        raw = (ids, _old_vectors(directory / f"docs.{generation}.sqlite", ids, manifest["dim"]))
    info = write_segment(directory, 1, 1, index, ranges_of(ids), raw=raw)
    store = Store.create(directory / store_name(1), directory.name, settings_of(manifest))
    try:
        with store.transaction():
            for document, own, first in zip(documents, chunks, first_chunks, strict=True):
                store.put_documents([document], own, first, _thumbnails(document))
            store.add_segment(info)
            next_chunk = int(ids.max()) + 1 if len(ids) else 0
            store.set_state(
                generation=1,
                documents=len(documents),
                chunks=sum(map(len, chunks)),
                next_chunk=next_chunk,
                next_segment=2,
                quantizer=None,
                trained_on=None,
                updated=now(),
            )
        store.checkpoint()
    finally:
        store.close()
    write_manifest(directory, manifest)
    remove_other_epochs(directory, 1)


def _old_documents(path: Path, content: str) -> tuple[list[Document], list[list[Chunk]], list[int]]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = db.execute("SELECT id, text, metadata FROM documents ORDER BY id").fetchall()
        spans = db.execute("SELECT chunk_id, doc_id, start, end FROM chunks ORDER BY chunk_id").fetchall()
        db.close()
    except sqlite3.DatabaseError as err:
        raise CorruptIndexError(f"cannot upgrade: unreadable format-1 store {path}: {err}") from None
    by_doc: dict[str, list[tuple[int, int, int]]] = {}
    for chunk_id, doc_id, start, end in spans:
        by_doc.setdefault(doc_id, []).append((chunk_id, start, end))
    documents, chunks, firsts = [], [], []
    for doc_id, text, metadata in rows:
        own = by_doc.get(doc_id, [])
        if not own or [c[0] for c in own] != list(range(own[0][0], own[0][0] + len(own))):
            raise CorruptIndexError(f"cannot upgrade {path}: the chunks of {doc_id!r} are not consecutive")
        documents.append(_document(doc_id, text, json.loads(metadata), content))
        chunks.append([Chunk(doc_id, start, end) for _, start, end in own])
        firsts.append(own[0][0])
    return documents, chunks, firsts


def _document(doc_id: str, text: str, metadata: dict[str, Any], content: str) -> Document:
    if content != "image":
        return Document(doc_id, text, metadata)
    source = metadata.pop("image_path", None)
    return Document(doc_id, text, metadata, kind="image", source=source or doc_id)


def _thumbnails(document: Document) -> dict[str, bytes]:
    if document.kind != "image" or not document.source or not Path(document.source).is_file():
        return {}
    try:
        return {document.id: thumbnail(load_image(document.source))}
    except ValueError:
        return {}


def _old_vectors(path: Path, ids: np.ndarray, dim: int) -> np.ndarray:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = dict(db.execute("SELECT chunk_id, vector FROM chunks").fetchall())
    db.close()
    return np.stack([np.frombuffer(rows[int(i)], dtype=np.float32) for i in ids]).reshape(len(ids), dim)


def _new_manifest(directory: Path, old: dict[str, Any]) -> dict[str, Any]:
    keep = ("content", "encoder", "dim", "metric", "spec", "search", "chunking", "created")
    return {
        **{key: old[key] for key in keep},
        "name": directory.name,
        "compaction": DEFAULT_POLICY.settings(),
        "lexical": LexicalSettings().to_dict() if old["content"] == "text" else None,
        "epoch": 1,
        "store": store_name(1),
    }
