"""Thread counts per path (embedsearch/runtime.py): one thread for single queries, every core for batch work.

Side by side in one run, alternated ``--repeats`` times, medians:

* **single query**: MiniLM encodes one query and faiss searches a Flat index of ``--vectors`` random unit
  vectors (384-d), the way a server answers one request, with torch and faiss at 1 thread and at every core;
* **batch**: MiniLM encodes ``--batch`` texts and faiss searches them all, at 1 thread and at every core.

    python benchmarks/bench_threads.py            # about a minute on 2 cores

Prints one line per configuration and writes benchmarks/results/bench_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embedsearch.encoders import get_encoder  # noqa: E402
from embedsearch.runtime import available_cores, use_threads  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_threads.json"
TEXT = "how do the mitochondria of muscle cells respond to endurance training in older adults"


def main() -> None:
    args = _parse()
    import faiss

    encoder = get_encoder("minilm")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.vectors, encoder.dim)).astype(np.float32)
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(encoder.dim)
    index.add(vectors)
    texts = [f"{TEXT} {i}" for i in range(args.batch)]
    counts = sorted({1, available_cores()})
    single = {n: [] for n in counts}
    batch = {n: [] for n in counts}
    encoder.encode_text([TEXT])  # load and warm up
    for _ in range(args.repeats):
        for n in counts:
            use_threads(n)
            single[n].append(_single(encoder, index, args.queries))
            batch[n].append(_batch(encoder, index, texts))
    rows = []
    for n in counts:
        row = {
            "threads": n,
            "single_query_ms": round(statistics.median(single[n]) * 1000, 2),
            "batch_per_text_ms": round(statistics.median(batch[n]) * 1000, 2),
        }
        rows.append(row)
        print(
            f"threads {n}  single query {row['single_query_ms']:7.2f} ms  batch {row['batch_per_text_ms']:6.2f} ms/text"
        )
    RESULTS.write_text(json.dumps({"cores": available_cores(), "vectors": args.vectors, "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


def _single(encoder, index, queries: int) -> float:
    """Median seconds of one encode + one search, over ``queries`` queries."""
    times = []
    for i in range(queries):
        start = time.perf_counter()
        index.search(encoder.encode_text([f"{TEXT} {i}"]), 10)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batch(encoder, index, texts: list[str]) -> float:
    """Seconds per text of encoding and searching ``texts`` as one batch."""
    start = time.perf_counter()
    index.search(encoder.encode_text(texts), 10)
    return (time.perf_counter() - start) / len(texts)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
