"""An index opened for reading.

Every read (one search, one lookup) runs in one read transaction of the document store and so sees one
committed state: its rows, segment list and tombstones agree. Before it searches, the reader brings its faiss
segments to that state: segments it has not read yet are read (and kept for the next reads), segments the state
no longer names are dropped. A segment that a compaction merged from segments the reader already holds can be
answered by those until it is read in the background (``background_loading``, as the HTTP server does), since
a merge keeps chunk ids; so no search waits for a large compaction's result.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.errors import CorruptIndexError
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.filters import FilterCache
from embedsearch.index.lexical import Analyzer, settings_of
from embedsearch.index.search_segments import Tombstones, search_segments
from embedsearch.index.segments import Segment, read_segment
from embedsearch.index.storage import MANIFEST, index_directory, read_manifest, store_name
from embedsearch.index.store import SegmentInfo, Store, StoreReaders

READ_ATTEMPTS = 3


class _StaleRead(Exception):
    """A file the read's state names was removed by a newer commit: read again from a newer state."""


@dataclass(frozen=True)
class SegmentSet:
    """The segments a committed state names, as this reader answers them (some perhaps by their sources)."""

    generation: int
    state: dict[str, Any]
    segments: list[Segment]
    dead: dict[int, Tombstones]  # per answering segment: the tombstones inside it
    complete: bool  # False while some segment is answered by its sources


@dataclass
class IndexView:
    """One consistent read of an index: the store inside a read transaction and the matching segments."""

    index: StoredIndex
    store: Store
    segment_set: SegmentSet
    _seen: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> dict[str, Any]:
        return self.segment_set.state

    def search(
        self, queries: np.ndarray, k: int, knobs: SearchKnobs, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest live chunks across every segment: ``(D, I)`` of shape ``(len(queries), k)``, scores descending
        (ties by chunk id), padded with -inf / -1. With ``allowed`` (sorted chunk ids), only those are candidates;
        small allowed sets are scored exactly, so filtering never loses results to an approximate index."""
        return search_segments(self.segment_set.segments, self.segment_set.dead, queries, k, knobs, allowed)

    def lexical_search(
        self, terms: list[str], limit: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """The ``limit`` best chunks for any of the analysed ``terms`` by BM25, kept to ``allowed`` (sorted chunk
        ids) if given: ``(scores, chunk ids, complete)``, descending; ``complete`` when no match was left unread
        (a caller that needs more allowed chunks asks again with a larger ``limit``)."""
        scores, ids = self.index.lexical_table(self.store).search(terms, limit)
        complete = len(ids) < limit
        if allowed is not None:
            keep = np.isin(ids, allowed, assume_unique=True)
            scores, ids = scores[keep], ids[keep]
        return scores, ids, complete

    def chunk_owners(self, chunk_ids: list[int]) -> dict[int, tuple[str, int, int]]:
        return self.store.chunk_owners(chunk_ids)

    def documents(self, ids: list[str]):
        return self.store.documents(ids)

    def chunk_ids_where(self, where: dict[str, Any]) -> np.ndarray:
        """Sorted chunk ids of the documents whose metadata has every ``key == value`` (the metadata index)."""
        return self.index.filters.chunk_ids(self.store, where)


class StoredIndex:
    """An index opened for reading. Use :meth:`reading` for a consistent read; it is safe from many threads."""

    def __init__(self, directory: Path, manifest: dict[str, Any], *, background_loading: bool = False) -> None:
        self.directory = directory
        self.manifest = manifest  # what the index is (manifest.json); what it holds is in each read's state
        self._stamp = _stamp(directory)
        self._readers = StoreReaders(directory / manifest.get("store", store_name(manifest["epoch"])), directory.name)
        self._cache: dict[int, Segment] = {}
        self._current: SegmentSet | None = None
        self._refresh = False
        self._lock = threading.Lock()
        self.filters = FilterCache()
        lexical = settings_of(manifest)
        self.analyzer = Analyzer(lexical) if lexical else None  # None: the index has no lexical side
        self._loader = _BackgroundLoader(self) if background_loading else None

    @classmethod
    def open(cls, name: str, home: str | Path | None = None, *, background_loading: bool = False) -> StoredIndex:
        """Open index ``name``: :class:`UnknownIndexError` if there is none, :class:`CorruptIndexError` naming
        the file if its manifest, store or segments are broken (its segments are read here, once)."""
        directory = index_directory(name, home)
        for _attempt in range(READ_ATTEMPTS):
            manifest = read_manifest(directory)
            try:
                index = cls(directory, manifest, background_loading=background_loading)
            except CorruptIndexError:
                if read_manifest(directory).get("epoch") == manifest["epoch"]:
                    raise
                continue  # a build replaced the epoch while we opened it: open the new one
            with index.reading() as view:
                view.store.check_counts()
                return index
        raise CorruptIndexError(f"index {name!r}: its files keep being replaced while it is opened ({directory})")

    @property
    def name(self) -> str:
        return self.directory.name

    @contextmanager
    def reading(self) -> Iterator[IndexView]:
        """A consistent read at the latest committed state (retried when a newer commit removed a file)."""
        for attempt in range(READ_ATTEMPTS):
            store = self._readers.get()
            try:
                with store.reading():
                    segment_set = self._segments_of(store)
                    yield IndexView(self, store, segment_set)
                    return
            except _StaleRead as stale:
                if attempt == READ_ATTEMPTS - 1:
                    raise CorruptIndexError(str(stale)) from None

    def lexical_table(self, store: Store):
        """The lexical side of this reader's ``store`` (attached to it once)."""
        if store.lexical is None:
            store.use_lexical(settings_of(self.manifest))
        return store.lexical

    def info(self) -> dict[str, Any]:
        """The manifest with the committed state: counts, generation, segments, tombstones, bytes, updated."""
        with self.reading() as view:
            return describe(self.manifest, view.state, view.store.segments(), view.store.tombstone_counts())

    def rebuilt(self) -> bool:
        """Whether the index was rebuilt (or removed, or given a lexical side) since it was opened: open it again
        to see the new one."""
        stamp = _stamp(self.directory)
        if stamp == self._stamp:
            return False
        try:
            manifest = read_manifest(self.directory)
        except (CorruptIndexError, OSError, LookupError):
            return True
        # a new epoch, or a lexical side added (`index add-lexical`): the manifest this reader holds is stale
        return manifest["epoch"] != self.manifest["epoch"] or manifest.get("lexical") != self.manifest.get("lexical")

    def close(self) -> None:
        if self._loader is not None:
            self._loader.stop()
        self._readers.close()

    # ---- bringing the segments to a committed state -----------------------------------------------------------

    def _segments_of(self, store: Store) -> SegmentSet:
        generation = store.generation()
        current = self._current
        if current is not None and current.generation == generation and not self._refresh:
            return current
        with self._lock:
            current = self._current
            if current is not None and generation < current.generation:
                return self._resolve(store, generation, evict=False)  # a read that began before a newer commit
            if current is None or current.generation != generation or self._refresh:
                self._refresh = False
                self._current = self._resolve(store, generation, evict=True)
            return self._current

    def _resolve(self, store: Store, generation: int, *, evict: bool) -> SegmentSet:
        tombstones = store.tombstones()
        answering: list[Segment] = []
        dead: dict[int, Tombstones] = {}
        complete = True
        for info in store.segments():
            parts = self._answer(info)
            complete &= [p.number for p in parts] == [info.segment]
            for part in parts:
                answering.append(part)
                dead[part.number] = Tombstones(tombstones.get(info.segment, np.zeros(0, dtype=np.int64)))
        if evict:
            keep = {s.number for s in answering} | (self._loader.pending() if self._loader else set())
            self._cache = {n: s for n, s in self._cache.items() if n in keep}
        return SegmentSet(generation, store.state(), answering, dead, complete)

    def _answer(self, info: SegmentInfo) -> list[Segment]:
        """The segments that answer for ``info``: itself if read, else (loading it in the background) the read
        segments it was merged from, else itself, read now."""
        cached = self._cache.get(info.segment)
        if cached is not None and cached.info.sha256 == info.sha256:
            return [cached]
        if self._loader is not None:
            sources = self._cached_sources(info)
            if sources:
                self._loader.request(info)
                return sources
        return [self._read(info)]

    def _cached_sources(self, info: SegmentInfo) -> list[Segment]:
        if not info.sources or not all(n in self._cache for n in info.sources):
            return []
        return [self._cache[n] for n in info.sources]

    def _read(self, info: SegmentInfo) -> Segment:
        try:
            segment = read_segment(self.directory, info, self.manifest["dim"], self.name)
        except FileNotFoundError:
            raise _StaleRead(f"index {self.name!r}: segment file {self.directory / info.file} is missing") from None
        self._cache[info.segment] = segment
        return segment

    def _loaded_in_background(self, segment: Segment) -> None:
        with self._lock:
            self._cache[segment.number] = segment
            self._refresh = True  # the next read answers with it instead of its sources


class _BackgroundLoader:
    """Reads segments for a reader in one thread, so that searches keep being answered meanwhile."""

    def __init__(self, index: StoredIndex) -> None:
        self._index = index
        self._queue: queue.Queue[SegmentInfo | None] = queue.Queue()
        self._pending: set[int] = set()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def pending(self) -> set[int]:
        with self._guard:
            return set(self._pending)

    def request(self, info: SegmentInfo) -> None:
        with self._guard:
            if info.segment in self._pending:
                return
            self._pending.add(info.segment)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"load-{self._index.name}", daemon=True)
                self._thread.start()
        self._queue.put(info)

    def _run(self) -> None:
        while (info := self._queue.get()) is not None:
            try:
                segment = read_segment(self._index.directory, info, self._index.manifest["dim"], self._index.name)
                self._index._loaded_in_background(segment)
            except (OSError, CorruptIndexError):
                pass  # a newer commit removed it, or it is broken: a search that needs it reads it and says so
            finally:
                with self._guard:
                    self._pending.discard(info.segment)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)


def describe(
    manifest: dict[str, Any], state: dict[str, Any], infos: list[SegmentInfo], tombstones: dict[int, int]
) -> dict[str, Any]:
    """What ``index info`` shows: the manifest, counts, generation, and each segment with its live and dead chunks."""
    segments = [
        {
            "segment": i.segment,
            "spec": i.spec or manifest["spec"],
            "vectors": i.vectors,
            "tombstones": tombstones.get(i.segment, 0),
            "bytes": i.bytes,
        }
        for i in infos
    ]
    return {
        **manifest,
        "count": state["documents"],
        "chunks": state["chunks"],
        "generation": state["generation"],
        "updated": state["updated"],
        "segments": segments,
        "tombstones": sum(tombstones.values()),
    }


def _stamp(directory: Path) -> int:
    try:
        return (directory / MANIFEST).stat().st_mtime_ns
    except OSError:
        return -1
