"""The document store: one SQLite database (WAL) per index epoch.

It holds the rows of every live document (text, metadata, content hash), their chunks (character spans; the
chunk id is the int64 id the faiss segments hold), a metadata index for ``where`` filters, the list of
segments, the tombstones (chunk ids still inside a segment file whose document was deleted or replaced) and
the committed state (generation, counts, id counters). One transaction commits a whole write, so the rows,
the segment list and the tombstones always agree; readers run each search in one read transaction and see
one committed state.

A document's chunks have consecutive ids ``first_chunk .. first_chunk + chunk_count - 1``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data import Chunk, Document
from embedsearch.errors import CorruptIndexError
from embedsearch.index.lexical import Analyzer, LexicalSettings, LexicalTable

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE documents (
    doc_key INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
    metadata TEXT NOT NULL, hash TEXT NOT NULL, first_chunk INTEGER NOT NULL, chunk_count INTEGER NOT NULL);
CREATE TABLE chunks (chunk_id INTEGER PRIMARY KEY, doc_key INTEGER NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL);
CREATE TABLE fields (key TEXT NOT NULL, value TEXT NOT NULL, doc_key INTEGER NOT NULL, first_chunk INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL, PRIMARY KEY (key, value, doc_key)) WITHOUT ROWID;
CREATE INDEX fields_by_document ON fields(doc_key);
CREATE TABLE thumbnails (doc_key INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE segments (segment INTEGER PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE tombstones (chunk_id INTEGER PRIMARY KEY, segment INTEGER NOT NULL);
CREATE INDEX tombstones_by_segment ON tombstones(segment);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
TABLES = ("documents", "chunks", "fields", "thumbnails", "segments", "tombstones", "state")
_BATCH = 900  # stays under SQLite's limit of bound parameters
INDEXED_VALUE_CHARS = 128  # longer metadata values are indexed by their digest (a `where` on them still works)


@dataclass
class SegmentInfo:
    """What the store records about one segment file.

    ``ranges`` are the ``[first, last)`` chunk-id ranges whose chunks the file holds (dead ones included);
    ``sources`` the segments a compaction merged into it (readers can use them until it is loaded);
    ``raw`` the file of its raw vectors (compressing specs only); ``quantizer`` the trained index it grew from;
    ``spec`` the faiss spec of the file when it is not the index's ("Flat" for a small buffer segment).
    """

    segment: int
    file: str
    vectors: int
    bytes: int
    sha256: str
    ranges: list[list[int]]
    sources: list[int] = field(default_factory=list)
    raw: str | None = None
    quantizer: str | None = None
    spec: str | None = None

    def holds(self, chunk_ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``chunk_ids`` fall in this segment's ranges."""
        mask = np.zeros(len(chunk_ids), dtype=bool)
        for first, last in self.ranges:
            mask |= (chunk_ids >= first) & (chunk_ids < last)
        return mask


class Store:
    """One connection to an index's store. Writers use :meth:`transaction`; readers :meth:`reading`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, index_name: str) -> None:
        self.path = path
        self._db = connection
        self.index_name = index_name
        self.lexical: LexicalTable | None = None  # the lexical side, once :meth:`use_lexical` attached it

    # ---- opening ----------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, index_name: str, lexical: LexicalSettings | None = None) -> Store:
        """A new, empty store at ``path`` (which must not exist), with a lexical side if ``lexical`` is given."""
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.executescript(SCHEMA)
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA busy_timeout = 10000")
        if lexical is not None:
            LexicalTable.create(db)
        return cls(path, db, index_name).use_lexical(lexical)

    @classmethod
    def open(cls, path: Path, index_name: str, *, writable: bool = False) -> Store:
        """The store at ``path``; :class:`CorruptIndexError` naming the index and the file if it is missing,
        not a SQLite database, or lacks a table."""
        if not path.is_file():
            raise CorruptIndexError(f"index {index_name!r}: its document store {path} is missing")
        try:
            db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA synchronous = FULL" if writable else "PRAGMA query_only = ON")
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as err:
            raise CorruptIndexError(f"index {index_name!r}: unreadable document store {path}: {err}") from None
        missing = [t for t in TABLES if t not in names]
        if missing:
            db.close()
            raise CorruptIndexError(f"index {index_name!r}: document store {path} has no table {missing[0]!r}")
        return cls(path, db, index_name)

    def use_lexical(self, settings: LexicalSettings | None) -> Store:
        """Keep the lexical side in step with every write of documents (the manifest says whether there is one);
        :class:`CorruptIndexError` if the manifest names one the store lacks."""
        if settings is None:
            self.lexical = None
            return self
        if not self.has_table("lexical"):
            raise CorruptIndexError(f"index {self.index_name!r}: document store {self.path} has no lexical table")
        self.lexical = LexicalTable(self._db, Analyzer(settings))
        return self

    def rebuild_lexical(self, settings: LexicalSettings, progress: bool = False) -> int:
        """(Re)create the lexical side from every stored chunk, inside the caller's transaction; returns the
        number of chunks indexed."""
        from tqdm.auto import tqdm

        self._db.execute("DROP TABLE IF EXISTS lexical")
        LexicalTable.create(self._db)
        self.use_lexical(settings)
        total = self.state().get("chunks", 0)
        sql = "SELECT c.chunk_id, d.text, c.start, c.end FROM chunks c JOIN documents d ON d.doc_key = c.doc_key"
        cursor, done = self._db.execute(sql), 0
        with tqdm(total=total, desc="lexical side", unit="chunk", disable=not progress) as bar:
            while rows := cursor.fetchmany(2048):
                self.lexical.add((chunk_id, text[start:end]) for chunk_id, text, start, end in rows)
                done += len(rows)
                bar.update(len(rows))
        return done

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE name = ?"
        return self._guarded(sql, (name,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One write transaction (taken at once, so that a second writer cannot interleave)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """One read transaction: every query inside it sees the same committed state."""
        self._guarded("BEGIN")
        try:
            yield self
        finally:
            self._db.execute("COMMIT")

    def _guarded(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.DatabaseError as err:
            raise CorruptIndexError(f"index {self.index_name!r}: document store {self.path}: {err}") from None

    # ---- state and segments ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The committed state: ``generation``, ``documents``, ``chunks``, ``next_chunk``, ``next_segment``, ..."""
        return {key: json.loads(value) for key, value in self._guarded("SELECT key, value FROM state")}

    def generation(self) -> int:
        row = self._guarded("SELECT value FROM state WHERE key = 'generation'").fetchone()
        if row is None:
            raise CorruptIndexError(f"index {self.index_name!r}: document store {self.path} has no state")
        return int(row[0])

    def set_state(self, **values: Any) -> None:
        self._db.executemany(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    def segments(self) -> list[SegmentInfo]:
        rows = self._guarded("SELECT info FROM segments ORDER BY segment").fetchall()
        return [SegmentInfo(**json.loads(r[0])) for r in rows]

    def add_segment(self, info: SegmentInfo) -> None:
        self._db.execute("INSERT INTO segments (segment, info) VALUES (?, ?)", (info.segment, json.dumps(asdict(info))))

    def remove_segments(self, segments: Iterable[int]) -> None:
        self._in("DELETE FROM segments WHERE segment IN ({})", list(segments))

    def tombstones(self) -> dict[int, np.ndarray]:
        """``{segment: sorted int64 chunk ids}`` of the tombstones inside each segment."""
        rows = self._guarded("SELECT segment, chunk_id FROM tombstones ORDER BY segment, chunk_id").fetchall()
        if not rows:
            return {}
        pairs = np.array(rows, dtype=np.int64)
        cuts = np.flatnonzero(np.diff(pairs[:, 0])) + 1
        return {int(part[0, 0]): part[:, 1].copy() for part in np.split(pairs, cuts)}

    def tombstone_counts(self) -> dict[int, int]:
        return dict(self._guarded("SELECT segment, COUNT(*) FROM tombstones GROUP BY segment"))

    def add_tombstones(self, chunk_ids: np.ndarray, segments: np.ndarray) -> None:
        self._db.executemany(
            "INSERT INTO tombstones (chunk_id, segment) VALUES (?, ?)",
            zip(chunk_ids.tolist(), segments.tolist(), strict=True),
        )

    def move_tombstones(self, sources: Sequence[int], target: int, dropped: np.ndarray) -> None:
        """Tombstones of merged ``sources``: those ``dropped`` (their chunks left the files) go, the rest now lie in
        ``target``."""
        self._in("DELETE FROM tombstones WHERE chunk_id IN ({})", dropped.tolist())
        for start in range(0, len(sources), _BATCH):
            part = list(sources[start : start + _BATCH])
            marks = ",".join("?" * len(part))
            self._db.execute(f"UPDATE tombstones SET segment = ? WHERE segment IN ({marks})", [target, *part])

    # ---- documents ------------------------------------------------------------------------------------------

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of those ids that are stored."""
        return dict(self._select_in("SELECT id, hash FROM documents WHERE id IN ({})", ids))

    def put_documents(
        self,
        documents: Sequence[Document],
        chunks: Sequence[Chunk],
        first_chunk: int,
        thumbnails: dict[str, bytes] | None = None,
    ) -> None:
        """Insert documents whose chunks (grouped by document, in ``documents``' order) get consecutive ids from
        ``first_chunk``, with the thumbnails of image documents."""
        thumbnails = thumbnails or {}
        spans: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            spans.setdefault(chunk.doc_id, []).append(chunk)
        next_id = first_chunk
        for document in documents:
            own = spans[document.id]
            doc_key = self._db.execute(
                "INSERT INTO documents (id, text, metadata, hash, first_chunk, chunk_count) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    document.id,
                    document.text,
                    metadata_json(document.metadata),
                    document.content_hash(),
                    next_id,
                    len(own),
                ),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO chunks (chunk_id, doc_key, start, end) VALUES (?, ?, ?, ?)",
                [(next_id + i, doc_key, c.start, c.end) for i, c in enumerate(own)],
            )
            self._db.executemany(
                "INSERT INTO fields (key, value, doc_key, first_chunk, chunk_count) VALUES (?, ?, ?, ?, ?)",
                [(key, value, doc_key, next_id, len(own)) for key, value in field_values(document.metadata)],
            )
            if self.lexical is not None:
                self.lexical.add((next_id + i, document.text[c.start : c.end]) for i, c in enumerate(own))
            if document.id in thumbnails:
                self._db.execute(
                    "INSERT INTO thumbnails (doc_key, data) VALUES (?, ?)", (doc_key, thumbnails[document.id])
                )
            next_id += len(own)

    def remove_documents(self, ids: Sequence[str]) -> np.ndarray:
        """Delete documents with their chunks and metadata rows; returns the int64 chunk ids they had."""
        rows = self._select_in("SELECT doc_key, first_chunk, chunk_count FROM documents WHERE id IN ({})", ids)
        keys = [r[0] for r in rows]
        self._in("DELETE FROM fields WHERE doc_key IN ({})", keys)
        self._in("DELETE FROM thumbnails WHERE doc_key IN ({})", keys)
        # by chunk-id range (the primary key): chunks has no index on doc_key, and a scan costs O(N)
        spans = [(first, first + count) for _key, first, count in rows]
        self._db.executemany("DELETE FROM chunks WHERE chunk_id >= ? AND chunk_id < ?", spans)
        self._in("DELETE FROM documents WHERE doc_key IN ({})", keys)
        removed = chunk_ranges([(r[1], r[2]) for r in rows])
        if self.lexical is not None:
            self.lexical.remove(removed)
        return removed

    def documents(self, ids: Sequence[str]) -> dict[str, Document]:
        """``{id: Document}`` of those ids that are stored."""
        rows = self._select_in("SELECT id, text, metadata FROM documents WHERE id IN ({})", ids)
        return {r[0]: Document(r[0], r[1], json.loads(r[2])) for r in rows}

    def thumbnail(self, doc_id: str) -> bytes | None:
        sql = "SELECT t.data FROM thumbnails t JOIN documents d ON d.doc_key = t.doc_key WHERE d.id = ?"
        row = self._guarded(sql, (doc_id,)).fetchone()
        return row[0] if row else None

    def document_ids(self, limit: int | None = None) -> list[str]:
        sql = "SELECT id FROM documents ORDER BY id" + (" LIMIT ?" if limit else "")
        return [r[0] for r in self._guarded(sql, (int(limit),) if limit else ())]

    def chunk_owners(self, chunk_ids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """``{chunk_id: (doc_id, start, end)}`` of those chunks whose document is stored."""
        sql = (
            "SELECT c.chunk_id, d.id, c.start, c.end FROM chunks c JOIN documents d ON d.doc_key = c.doc_key "
            "WHERE c.chunk_id IN ({})"
        )
        return {r[0]: (r[1], r[2], r[3]) for r in self._select_in(sql, list(chunk_ids))}

    def live_chunk_ids(self) -> np.ndarray:
        """Every stored chunk id, sorted (for checks and compaction of small indexes)."""
        rows = self._guarded("SELECT first_chunk, chunk_count FROM documents").fetchall()
        return np.sort(chunk_ranges(rows))

    def field_chunks(self, key: str, value: Any, after_doc_key: int = 0) -> tuple[np.ndarray, int]:
        """Chunk ids of the documents (with ``doc_key > after_doc_key``) whose metadata has ``key == value``, as
        :func:`field_text` reads values, and the largest ``doc_key`` the store holds."""
        sql = "SELECT first_chunk, chunk_count FROM fields WHERE key = ? AND value = ? AND doc_key > ?"
        rows = self._guarded(sql, (key, index_value(field_text(value)), after_doc_key)).fetchall()
        return chunk_ranges(rows), self.last_doc_key()

    def last_doc_key(self) -> int:
        row = self._guarded("SELECT seq FROM sqlite_sequence WHERE name = 'documents'").fetchone()
        return int(row[0]) if row else 0

    def counts(self) -> dict[str, int]:
        """Rows counted (for checks): documents, chunks, tombstones."""
        count = {t: self._guarded(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("documents", "chunks")}
        return {**count, "tombstones": self._guarded("SELECT COUNT(*) FROM tombstones").fetchone()[0]}

    def check_counts(self) -> None:
        """:class:`CorruptIndexError` if the committed counts disagree with the rows (a store that was edited or
        swapped with another's)."""
        state, rows = self.state(), self.counts()
        for key, table in (("documents", "documents"), ("chunks", "chunks")):
            if state.get(key) != rows[table]:
                raise CorruptIndexError(
                    f"index {self.index_name!r}: document store {self.path} records {state.get(key)} {key} but "
                    f"holds {rows[table]}"
                )

    def integrity_problems(self) -> list[str]:
        """What SQLite's ``quick_check`` reports (empty when the file is sound)."""
        rows = [r[0] for r in self._guarded("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (after a build, so that it is one file)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _select_in(self, sql: str, keys: Sequence[Any]) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(keys), _BATCH):
            part = list(keys[start : start + _BATCH])
            rows += self._guarded(sql.format(",".join("?" * len(part))), part).fetchall()
        return rows

    def _in(self, sql: str, keys: Sequence[Any]) -> None:
        for start in range(0, len(keys), _BATCH):
            part = list(keys[start : start + _BATCH])
            self._db.execute(sql.format(",".join("?" * len(part))), part)


class StoreReaders:
    """One read connection per thread to a store (SQLite connections must not run two transactions at once)."""

    def __init__(self, path: Path, index_name: str) -> None:
        self.path = path
        self.index_name = index_name
        self._local = threading.local()
        self._all: list[Store] = []
        self._lock = threading.Lock()
        self.get()  # a missing or unreadable store fails when the index is opened, not at its first search

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store.open(self.path, self.index_name)
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._all:
                store.close()
            self._all.clear()


def chunk_ranges(rows: Iterable[tuple[int, int]]) -> np.ndarray:
    """The int64 chunk ids of ``(first_chunk, chunk_count)`` rows, concatenated."""
    pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0, dtype=np.int64)
    counts = pairs[:, 1]
    starts = np.repeat(pairs[:, 0] - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return starts + np.arange(counts.sum(), dtype=np.int64)


def metadata_json(metadata: dict[str, Any]) -> str:
    """Metadata as stored: JSON that any reader can parse back (no NaN or infinity; the caller checked)."""
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False)


def field_values(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(key, indexed value)`` rows of a document's metadata (null values are not indexed)."""
    return [(key, index_value(field_text(value))) for key, value in metadata.items() if value is not None]


def field_text(value: Any) -> str:
    """How a metadata value reads in a ``where`` filter: ``year=2020`` matches 2020 and ``"2020"``,
    ``featured=true`` matches true; a list or object reads as its compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def index_value(text: str) -> str:
    """Values up to :data:`INDEXED_VALUE_CHARS` characters are indexed as they are, longer ones by digest."""
    if len(text) <= INDEXED_VALUE_CHARS:
        return text
    return "\x00sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
