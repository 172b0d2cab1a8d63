"""HNSW recall@10 and single-query p50 against efSearch as N grows: where the default efSearch must grow.

The vectors and queries of benchmarks/bench_writes.py (the ``bench-384`` encoder), an ``HNSW32,Flat`` index
built as embedsearch builds one (faiss ``index_factory``, inner product), exact top-10 as the reference, 200
single queries on one thread. For each N and efSearch, one line: recall@10 and p50.

    python benchmarks/bench_hnsw_ef.py                    # 100k and 1M: about 8 minutes on 2 cores
    python benchmarks/bench_hnsw_ef.py --sizes 100000     # 1 minute

Writes benchmarks/results/bench_hnsw_ef.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_writes import batch, queries  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_hnsw_ef.json"
EFS = (64, 96, 128, 192, 256, 384)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        rows += _size(n)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(f"wrote {RESULTS}")


def _size(n: int) -> list[dict]:
    data, vectors = batch(0, n).vectors, queries()
    truth = _exact(data, vectors)
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index = faiss.index_factory(data.shape[1], "HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(data)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    rows = []
    for ef in EFS:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        found, times = [], []
        for query in vectors:
            t0 = time.perf_counter()
            _D, I = index.search(query[None, :], 10, params=params)
            times.append(time.perf_counter() - t0)
            found.append(set(I[0].tolist()))
        recall = statistics.mean(len(f & t) / 10 for f, t in zip(found, truth, strict=True))
        row = {
            "n": n,
            "ef_search": ef,
            "recall@10": round(recall, 4),
            "p50_ms": round(statistics.median(times) * 1e3, 3),
        }
        rows.append(row | {"build_s": round(build, 1)})
        print(f"hnsw  n={n:>8}  efSearch={ef:>4}  recall@10={row['recall@10']:.4f}  p50={row['p50_ms']:.3f} ms")
    return rows


def _exact(data: np.ndarray, vectors: np.ndarray) -> list[set[int]]:
    out = []
    for start in range(0, len(vectors), 50):
        scores = vectors[start : start + 50] @ data.T
        top = np.argpartition(-scores, 9, axis=1)[:, :10]
        out += [set(row.tolist()) for row in top]
    return out


if __name__ == "__main__":
    main()
