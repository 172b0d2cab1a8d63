"""Micro-batching: concurrent text queries for one encoder are embedded together, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

Embed = Callable[[list[str]], np.ndarray]


class MicroBatcher:
    """Queue texts; one worker thread embeds whatever has queued (up to ``max_batch``) in one call.

    Nothing waits for a batch to fill: a lone query is embedded at once, and queries that arrive while the
    model is busy form the next batch. One inference thread per encoder keeps torch from fighting itself.
    """

    def __init__(self, embed: Embed, max_batch: int = 32) -> None:
        self._embed = embed
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._queue: asyncio.Queue[tuple[str, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self.batch_sizes: list[int] = []

    async def embed(self, text: str) -> np.ndarray:
        """The float32 ``(dim,)`` vector of ``text``; raises what the encoder raises."""
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self.batch_sizes.append(len(batch))
            try:
                vectors = await loop.run_in_executor(self._executor, self._embed, [text for text, _ in batch])
            except Exception as err:  # handed to every waiting request, which maps it to a response
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
