"""HTTP search throughput and latency against the same search called in-process, in one run.

A bounded load on 127.0.0.1 only: a fixed number of concurrent clients send SciFact test queries to
``embedsearch serve`` for a fixed duration, then stop. Configurations:

* ``in-process``: ``Searcher.search(query, k=10)`` in a loop, one thread (the API a Python user calls);
* ``http``: ``POST /indexes/<name>/search`` from CONCURRENCY clients (the server micro-batches them);
* ``http+write``: the same load while ``POST /indexes/<name>/documents`` upserts WRITE_DOCS documents;
  only requests sent while the write runs are counted.

    python benchmarks/bench_http.py --home benchmarks/results/cache/home --index scifact

The index must exist (``embedsearch index build scifact ../shared/data/scifact/corpus.jsonl --home ...``).
Writes benchmarks/results/bench_http.json and prints one line per configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data")) / "scifact"


def main() -> None:
    args = _parse()
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").read_text().splitlines()][-300:]
    rows = [_in_process(args, queries)]
    port = _free_port()
    server = _start_server(args, port)
    try:
        url = f"http://127.0.0.1:{port}"
        rows.append(asyncio.run(_load(url, args, queries, write=False)))
        rows.append(asyncio.run(_load(url, args, queries, write=True)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    _report(rows, args)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", default=str(REPO / "benchmarks" / "results" / "cache" / "home"))
    parser.add_argument("--index", default="scifact")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per configuration")
    parser.add_argument("--write-docs", type=int, default=100, help="documents upserted during http+write")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_http.json")
    return parser.parse_args()


def _in_process(args: argparse.Namespace, queries: list[str]) -> dict:
    from embedsearch import load_index
    from embedsearch.runtime import use_query_threads

    use_query_threads()  # the server's thread policy
    searcher = load_index(args.index, args.home)
    searcher.search(queries[0], k=10)  # warm up
    latencies, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < args.duration:
        began = time.perf_counter()
        searcher.search(queries[i % len(queries)], k=10)
        latencies.append(time.perf_counter() - began)
        i += 1
    return _row("in-process", latencies, time.perf_counter() - start, concurrency=1)


def _start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "from embedsearch.cli import main; main()",
        "serve",
        "--home",
        args.home,
        "--index",
        args.index,
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    sys.exit("the server did not start within 120 s")


async def _load(url: str, args: argparse.Namespace, queries: list[str], write: bool) -> dict:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await client.post(f"/indexes/{args.index}/search", json={"query": queries[0], "k": 10})
        stop = asyncio.Event()
        start = time.perf_counter()
        writer = asyncio.create_task(_write(client, args, stop)) if write else None
        if writer is None:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        workers = [_client(client, args.index, queries, w, stop, latencies) for w in range(args.concurrency)]
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
        extra = {"write_s": (await writer)} if writer else {}
    return {**_row("http+write" if write else "http", latencies, elapsed, args.concurrency), **extra}


async def _client(client, index, queries, worker, stop, latencies) -> None:
    i = worker * 37  # each client walks the queries from its own place
    while not stop.is_set():
        began = time.perf_counter()
        response = await client.post(f"/indexes/{index}/search", json={"query": queries[i % len(queries)], "k": 10})
        response.raise_for_status()
        latencies.append(time.perf_counter() - began)
        i += 1


async def _write(client: httpx.AsyncClient, args: argparse.Namespace, stop: asyncio.Event) -> float:
    lines = (DATA / "corpus.jsonl").read_text().splitlines()[: args.write_docs]
    documents = [{**json.loads(line), "text": json.loads(line)["text"] + f" (revised {time.time()})"} for line in lines]
    start = time.perf_counter()
    response = await client.post(f"/indexes/{args.index}/documents", json={"documents": documents})
    response.raise_for_status()
    stop.set()
    return time.perf_counter() - start


def _row(config: str, latencies: list[float], elapsed: float, concurrency: int) -> dict:
    ordered = sorted(latencies)
    return {
        "config": config,
        "concurrency": concurrency,
        "requests": len(ordered),
        "seconds": elapsed,
        "rps": len(ordered) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"{'config':<12}{'conc':>5}{'requests':>9}{'req/s':>8}{'p50_ms':>8}{'p99_ms':>8}")
    for row in rows:
        print(
            f"{row['config']:<12}{row['concurrency']:>5}{row['requests']:>9}{row['rps']:>8.1f}"
            f"{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}"
            + (f"  write took {row['write_s']:.1f}s" if "write_s" in row else "")
        )
    ratio = rows[1]["rps"] / rows[0]["rps"]
    verdict = "meets" if ratio >= 0.7 else "MISSES"
    print(f"http / in-process throughput: {ratio:.2f} ({verdict} the >= 0.70 target)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "ratio": ratio,
                "machine": machine,
                "settings": {"concurrency": args.concurrency, "duration": args.duration, "write_docs": args.write_docs},
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
