"""``where`` filters through the store's metadata index, with a cache of each filter's chunk ids.

A filter ``key == value`` reads the chunk ids of the matching documents from the ``fields`` table (an index on
``(key, value)``), so its cost grows with the number of matches, not of documents. Each reader keeps the ids of
recent filters: documents only ever get larger keys and chunk ids, so a cached entry is brought up to date by
reading just the documents added since; ids of documents deleted since stay in it and are dropped by the
search (they are tombstones or in no segment any more). Entries are rebuilt after
:data:`REBUILD_AFTER_GENERATIONS` generations, so that such ids do not pile up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedsearch.index.store import Store, field_text

CACHE_ENTRIES = 256
CACHE_BYTES = 256 * 2**20
REBUILD_AFTER_GENERATIONS = 256


@dataclass
class _Entry:
    chunk_ids: np.ndarray  # sorted
    doc_key: int  # documents up to this key are in it
    generation: int  # when it was read from scratch


class FilterCache:
    """Sorted chunk ids per ``key == value`` filter, least recently used first out."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._limit = entries
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def chunk_ids(self, store: Store, where: dict[str, Any]) -> np.ndarray:
        """Sorted unique chunk ids of documents whose metadata has every ``key == value`` of ``where``."""
        result: np.ndarray | None = None
        for key, value in sorted(where.items(), key=lambda item: item[0]):
            ids = self._one(store, key, value)
            result = ids if result is None else np.intersect1d(result, ids, assume_unique=True)
            if not len(result):
                break
        return result if result is not None else np.zeros(0, dtype=np.int64)

    def _one(self, store: Store, key: str, value: Any) -> np.ndarray:
        name = (key, field_text(value))
        generation = store.generation()
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                self._entries.move_to_end(name)
        if entry is None or generation - entry.generation > REBUILD_AFTER_GENERATIONS or generation < entry.generation:
            ids, last = store.field_chunks(key, value)
            entry = _Entry(np.sort(ids), last, generation)
        elif store.last_doc_key() != entry.doc_key:
            added, last = store.field_chunks(key, value, after_doc_key=entry.doc_key)
            entry = _Entry(np.concatenate([entry.chunk_ids, np.sort(added)]), last, entry.generation)
        self._store(name, entry)
        return entry.chunk_ids

    def _store(self, name: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            self._entries[name] = entry
            self._entries.move_to_end(name)
            while len(self._entries) > self._limit or self._bytes() > self._max_bytes:
                if len(self._entries) == 1:
                    break
                self._entries.popitem(last=False)

    def _bytes(self) -> int:
        return sum(entry.chunk_ids.nbytes for entry in self._entries.values())
