"""The document store: one SQLite file per index generation with documents, chunks and chunk vectors.

A generation's file is written once by a writer and then never changed, so readers open it read-only and
immutable (no locking). Chunk ids are the int64 ids the faiss index holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data import Chunk, Document

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    start INTEGER NOT NULL, end INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
"""
_BATCH = 900  # stays under SQLite's limit of bound parameters


class DocStore:
    """Documents and their chunks. Open with :meth:`open_readonly` or :meth:`open_writable`."""

    def __init__(self, connection: sqlite3.Connection, dim: int) -> None:
        self._db = connection
        self.dim = dim

    @classmethod
    def open_readonly(cls, path: Path, dim: int) -> DocStore:
        uri = f"file:{path}?mode=ro&immutable=1"
        return cls(sqlite3.connect(uri, uri=True, check_same_thread=False), dim)

    @classmethod
    def open_writable(cls, path: Path, dim: int, copy_from: Path | None = None) -> DocStore:
        """A new store file at ``path``, starting empty or as a copy of the store at ``copy_from``."""
        db = sqlite3.connect(path)
        if copy_from is not None:
            with sqlite3.connect(f"file:{copy_from}?mode=ro", uri=True) as source:
                source.backup(db)
        db.executescript(SCHEMA)
        db.execute("PRAGMA foreign_keys = ON")
        return cls(db, dim)

    def close(self) -> None:
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def chunk_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of those ids that are stored."""
        return dict(self._select_in("SELECT id, hash FROM documents WHERE id IN ({})", ids))

    def put_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[int]:
        """Insert (or replace) a document with its chunks; returns the new chunk ids."""
        self._db.execute(
            "INSERT INTO documents (id, text, metadata, hash) VALUES (?, ?, ?, ?)",
            (document.id, document.text, json.dumps(document.metadata, ensure_ascii=False), document.content_hash()),
        )
        sql = "INSERT INTO chunks (doc_id, start, end, vector) VALUES (?, ?, ?, ?)"
        return [
            self._db.execute(sql, (c.doc_id, c.start, c.end, v.astype(np.float32).tobytes())).lastrowid
            for c, v in zip(chunks, vectors, strict=True)
        ]

    def delete_documents(self, ids: Sequence[str]) -> list[int]:
        """Delete documents and their chunks; returns the chunk ids that were removed."""
        chunk_ids = [r[0] for r in self._select_in("SELECT chunk_id FROM chunks WHERE doc_id IN ({})", ids)]
        for start in range(0, len(ids), _BATCH):
            part = list(ids[start : start + _BATCH])
            marks = ",".join("?" * len(part))
            self._db.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
            self._db.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)
        return chunk_ids

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk_ids int64 (n,), vectors float32 (n, dim))`` of every chunk, in chunk-id order."""
        rows = self._db.execute("SELECT chunk_id, vector FROM chunks ORDER BY chunk_id").fetchall()
        return self._unpack(rows)

    def vectors_of(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = self._select_in("SELECT chunk_id, vector FROM chunks WHERE chunk_id IN ({})", list(chunk_ids))
        return self._unpack(rows)

    def _unpack(self, rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        blob = b"".join(r[1] for r in rows)
        return ids, np.frombuffer(blob, dtype=np.float32).reshape(len(rows), self.dim)

    def chunk_owners(self, chunk_ids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """``{chunk_id: (doc_id, start, end)}`` for the given chunk ids."""
        sql = "SELECT chunk_id, doc_id, start, end FROM chunks WHERE chunk_id IN ({})"
        return {r[0]: (r[1], r[2], r[3]) for r in self._select_in(sql, list(chunk_ids))}

    def documents(self, ids: Sequence[str]) -> dict[str, Document]:
        """``{id: Document}`` of those ids that are stored."""
        rows = self._select_in("SELECT id, text, metadata FROM documents WHERE id IN ({})", ids)
        return {r[0]: Document(r[0], r[1], json.loads(r[2])) for r in rows}

    def chunk_ids_where(self, where: dict[str, Any]) -> np.ndarray:
        """Ids of the chunks of documents whose metadata has every ``key == value`` (compared as text)."""
        clause = (
            "(CASE json_type(d.metadata, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "ELSE CAST(json_extract(d.metadata, ?) AS TEXT) END) = ?"
        )
        clauses = " AND ".join(clause for _ in where)
        params: list[Any] = []
        for key, value in where.items():
            path = '$."' + key.replace('"', '""') + '"'
            params += [path, path, _as_text(value)]
        sql = f"SELECT c.chunk_id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {clauses}"
        return np.array([r[0] for r in self._db.execute(sql, params)], dtype=np.int64)

    def ids(self, limit: int | None = None) -> list[str]:
        sql = "SELECT id FROM documents ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [r[0] for r in self._db.execute(sql)]

    def _select_in(self, sql: str, keys: Sequence[Any]) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(keys), _BATCH):
            part = list(keys[start : start + _BATCH])
            rows += self._db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return rows


def _as_text(value: Any) -> str:
    """How a JSON value reads as text in :meth:`chunk_ids_where`: ``year=2020`` and ``featured=true`` match."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)
