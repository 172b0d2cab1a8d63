"""The indexes a server holds open: loaded once, shared encoders, reopened when a write commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from embedsearch.errors import UnknownIndexError
from embedsearch.index.storage import MANIFEST, index_directory, list_index_names
from embedsearch.search import Searcher
from embedsearch.serve.batching import MicroBatcher
from embedsearch.serve.settings import ServeSettings

T = TypeVar("T")


class IndexHub:
    """Open searchers by index name. A searcher is a snapshot: a write swaps in a new one when it commits,
    and a change made by another process (the CLI) is noticed by the manifest's modification time."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._searchers: dict[str, Searcher] = {}
        self._stamps: dict[str, int] = {}
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._batchers: dict[str, MicroBatcher] = {}

    def load(self) -> None:
        """Open every served index (encoders load here, once, shared by fingerprint)."""
        names = self.settings.names or tuple(list_index_names(self.settings.home))
        for name in names:
            self._open(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._searchers)

    def searcher(self, name: str) -> Searcher:
        """The current snapshot of index ``name``; :class:`UnknownIndexError` if it is not served."""
        if name not in self._searchers:
            raise UnknownIndexError(f"no index named {name!r} is served (served: {', '.join(self.names) or 'none'})")
        if self._stamp(name) != self._stamps[name]:
            self._open(name)
        return self._searchers[name]

    def batcher(self, searcher: Searcher) -> MicroBatcher:
        """The micro-batcher of a searcher's encoder (one per encoder, shared by its indexes)."""
        key = searcher.encoder.fingerprint
        if key not in self._batchers:
            encoder = searcher.encoder
            self._batchers[key] = MicroBatcher(lambda texts: encoder.encode_text(texts), self.settings.max_batch)
        return self._batchers[key]

    async def write(self, name: str, work: Callable[[], T]) -> T:
        """Run a write off the event loop, one at a time per index, then serve its committed state."""
        self.searcher(name)
        async with self._write_locks.setdefault(name, asyncio.Lock()):
            result = await run_in_threadpool(work)
            self._open(name)
        return result

    def manifests(self) -> list[dict[str, Any]]:
        return [self.searcher(name).manifest for name in self.names]

    def _open(self, name: str) -> None:
        stamp = self._stamp(name)
        self._searchers[name] = Searcher.open(name, self.settings.home)
        self._stamps[name] = stamp

    def _stamp(self, name: str) -> int:
        path: Path = index_directory(name, self.settings.home) / MANIFEST
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return -1

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
