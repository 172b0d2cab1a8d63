"""The indexes a server holds open: loaded once, shared encoders, writes one at a time per index, compaction in
the background, and a broken index reported for itself while the others keep being served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from embedsearch.errors import CorruptIndexError, EmbedsearchError, UnknownIndexError
from embedsearch.index import compact_if_needed, index_stamp, list_index_names
from embedsearch.search import Searcher
from embedsearch.serve.batching import MicroBatcher
from embedsearch.serve.settings import ServeSettings

T = TypeVar("T")
log = logging.getLogger("embedsearch")


class IndexHub:
    """Open searchers by index name. A searcher answers every search from the index's latest committed state
    (so writes by this server or by the CLI are seen at once); an index rebuilt on disk is opened again."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._searchers: dict[str, Searcher] = {}
        self._broken: dict[str, str] = {}
        self._broken_stamps: dict[str, tuple[int, ...]] = {}
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._open_locks: dict[str, asyncio.Lock] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._compactions: dict[str, asyncio.Task] = {}

    def load(self) -> None:
        """Open every served index (encoders load here, once, shared by fingerprint); a broken one is noted."""
        names = self.settings.names or tuple(list_index_names(self.settings.home))
        for name in names:
            self._open(name)

    @property
    def names(self) -> list[str]:
        """Every served index, the broken ones included."""
        return sorted({*self._searchers, *self._broken})

    @property
    def broken(self) -> dict[str, str]:
        """``{name: why it cannot be served}``."""
        return dict(self._broken)

    async def searcher(self, name: str) -> Searcher:
        """The searcher of index ``name``: :class:`UnknownIndexError` if it is not served, :class:`CorruptIndexError`
        (HTTP 503) if it is broken. An index rebuilt on disk is opened again, off the event loop."""
        if name not in self._searchers and name not in self._broken:
            raise UnknownIndexError(f"no index named {name!r} is served (served: {', '.join(self.names) or 'none'})")
        current = self._searchers.get(name)
        if current is None and not self._changed_since_broken(name):
            raise CorruptIndexError(self._broken[name])
        if current is None or current.rebuilt():
            async with self._open_locks.setdefault(name, asyncio.Lock()):
                current = self._searchers.get(name)
                if current is None or current.rebuilt():
                    await run_in_threadpool(self._open, name)
        if name in self._broken:
            raise CorruptIndexError(self._broken[name])
        return self._searchers[name]

    def batcher(self, searcher: Searcher) -> MicroBatcher:
        """The micro-batcher of a searcher's encoder (one per encoder, shared by its indexes)."""
        key = searcher.encoder.fingerprint
        if key not in self._batchers:
            encoder = searcher.encoder
            self._batchers[key] = MicroBatcher(lambda texts: encoder.encode_text(texts), self.settings.max_batch)
        return self._batchers[key]

    async def write(self, name: str, work: Callable[[], T]) -> T:
        """Run a write off the event loop, one at a time per index; then compact in the background if needed."""
        await self.searcher(name)
        async with self._write_locks.setdefault(name, asyncio.Lock()):
            result = await run_in_threadpool(work)
        self._compact_later(name)
        return result

    def _compact_later(self, name: str) -> None:
        running = self._compactions.get(name)
        if running is None or running.done():
            self._compactions[name] = asyncio.create_task(self._compact(name))

    async def _compact(self, name: str) -> None:
        try:
            report = await run_in_threadpool(compact_if_needed, name, self.settings.home)
            if report.merges:
                log.info("index %r: compacted %s", name, report.merges)
        except EmbedsearchError as err:  # the write succeeded; a failed compaction is retried after the next one
            log.warning("index %r: compaction failed: %s", name, err)

    async def summaries(self) -> list[dict[str, Any]]:
        """The description of every served index (``{"name", "broken"}`` for a broken one)."""

        def describe() -> list[dict[str, Any]]:
            out = []
            for name in self.names:
                if name in self._broken:
                    out.append({"name": name, "broken": self._broken[name]})
                    continue
                try:
                    out.append(self._searchers[name].info())
                except EmbedsearchError as err:
                    out.append({"name": name, "broken": str(err)})
            return out

        return await run_in_threadpool(describe)

    def _changed_since_broken(self, name: str) -> bool:
        """Whether a broken index's folder changed since it failed to open (then it is worth another try)."""
        return index_stamp(name, self.settings.home) != self._broken_stamps.get(name)

    def _open(self, name: str) -> None:
        old = self._searchers.pop(name, None)
        stamp = index_stamp(name, self.settings.home)
        try:
            self._searchers[name] = Searcher.open(name, self.settings.home, background_loading=True)
            self._broken.pop(name, None)
        except EmbedsearchError as err:
            self._broken[name] = str(err)
            self._broken_stamps[name] = stamp
            log.warning("not serving index %r: %s", name, err)
        if old is not None:
            old.close()

    async def close(self) -> None:
        for task in self._compactions.values():
            if not task.done():
                await asyncio.wait([task], timeout=30)
        for batcher in self._batchers.values():
            await batcher.close()
        for searcher in self._searchers.values():
            searcher.close()
