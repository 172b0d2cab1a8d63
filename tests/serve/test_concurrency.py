"""Searches are answered while a write runs, and see its result as soon as it commits; micro-batching."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from embedsearch.encoders import get_encoder
from embedsearch.serve.batching import MicroBatcher


def test_searches_continue_during_a_write_and_see_it_after_commit(client, monkeypatch):
    encoder = get_encoder("fake")
    monkeypatch.setattr(encoder, "delay", 0.02)  # each batch of 8 texts: 20 ms, so the write takes ~1.3 s
    documents = [{"_id": f"new{i}", "text": f"fresh document number {i} about comets"} for i in range(500)]
    result = {}
    writer = threading.Thread(
        target=lambda: result.update(r=client.post("/indexes/zoo/documents", json={"documents": documents}))
    )
    writer.start()
    latencies, counts = [], []
    while writer.is_alive():
        start = time.perf_counter()
        response = client.post("/indexes/zoo/search", json={"query": "comets", "k": 3})
        latencies.append(time.perf_counter() - start)
        counts.append(client.get("/indexes/zoo").json()["count"])
        assert response.status_code == 200
    writer.join()
    assert result["r"].status_code == 200 and result["r"].json()["count"] == 505
    assert len(latencies) >= 5 and max(latencies) < 1.0  # answered throughout, never blocked by the write
    assert set(counts) <= {5, 505} and counts[0] == 5
    assert client.get("/indexes/zoo").json()["count"] == 505


def test_micro_batcher_embeds_concurrent_queries_together_and_in_order():
    seen = []

    def embed(texts):
        seen.append(list(texts))
        time.sleep(0.05)
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    async def run():
        batcher = MicroBatcher(embed, max_batch=16)
        results = await asyncio.gather(*(batcher.embed("x" * n) for n in range(1, 11)))
        await batcher.close()
        return results

    results = asyncio.run(run())
    assert [float(r[0]) for r in results] == [float(n) for n in range(1, 11)]
    assert len(seen) < 10 and sum(len(b) for b in seen) == 10  # batched, nothing lost


def test_micro_batcher_passes_encoder_errors_to_every_waiter():
    def embed(texts):
        raise RuntimeError("model exploded")

    async def run():
        batcher = MicroBatcher(embed)
        outcomes = await asyncio.gather(batcher.embed("a"), batcher.embed("b"), return_exceptions=True)
        await batcher.close()
        return outcomes

    assert all(isinstance(o, RuntimeError) for o in asyncio.run(run()))
