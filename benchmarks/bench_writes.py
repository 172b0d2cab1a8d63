"""What writes cost as an index grows, and searches after them: embedsearch against LanceDB and Chroma.

Every configuration (a store, a size N, a spec) runs in a fresh child process on the same documents and vectors
(the ``bench-384`` encoder: clustered 384-d vectors from a text's hash, fast, so storage is measured, not a
model) and the same operations, in this order:

* build N documents; search p50/p99 of 200 single queries (one thread) and recall@10 against exact search;
  filtered searches matching 10% and 1% of the documents (cold: the first query of a filter; warm: the rest);
* add 100 new documents and delete 1 document, 5 times each (median);
* compact (LanceDB: ``optimize``), then the bytes on disk against the raw data (float32 vectors + texts +
  metadata as JSON).

At one size (``--upsert-size``, 100,000) also: 1,000 single-document upserts in a row (total time, segments
after, search p50 with automatic compaction against the same index fully compacted), and for embedsearch the
search p50 and recall@10 with the documents in 1, 8 and 32 segments.

    python benchmarks/bench_writes.py                          # 10k, 100k, 1M; all stores; about an hour here
    python benchmarks/bench_writes.py --sizes 10000 --upsert-size 10000   # a quick look

Writes benchmarks/results/bench_writes.json (rows appended as they finish) and prints one line per row.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_encoder import vectors_of  # noqa: E402
from benchmarks.writes_systems import SYSTEMS, Batch, fresh  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "bench_writes.json"
SPECS = ("Flat", "HNSW32,Flat", "IVF,Flat")  # "IVF" gets about 4 sqrt(N) lists (a power of 2), as --spec auto does
QUERIES = 200
REPEATS = 5
FILTERS = {"10%": {"g10": "3"}, "1%": {"g100": "42"}}


def batch(first: int, count: int, version: int = 0) -> Batch:
    ids = [f"d{i}" for i in range(first, first + count)]
    texts = [f"document {i} version {version} about topic {i % 997}" for i in range(first, first + count)]
    vectors = _normalised(vectors_of(texts))
    return Batch(
        ids,
        texts,
        vectors,
        [str(i % 10) for i in range(first, first + count)],
        [str(i % 100) for i in range(first, first + count)],
    )


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def queries() -> np.ndarray:
    return _normalised(vectors_of([f"query {j}" for j in range(QUERIES)]))


def exact_top10(data: Batch, vectors: np.ndarray, keep: np.ndarray | None = None) -> list[set[str]]:
    ids = np.array(data.ids)
    base = data.vectors if keep is None else data.vectors[keep]
    names = ids if keep is None else ids[keep]
    out = []
    for start in range(0, len(vectors), 50):
        scores = vectors[start : start + 50] @ base.T
        top = np.argpartition(-scores, 9, axis=1)[:, :10]
        out += [set(names[row].tolist()) for row in top]
    return out


def timed_searches(system, vectors: np.ndarray, where=None, **knobs) -> tuple[list[float], list[list[str]]]:
    times, found = [], []
    for vector in vectors:
        start = time.perf_counter()
        found.append(system.search(vector, 10, where, **knobs))
        times.append(time.perf_counter() - start)
    return times, found


def recall(found: list[list[str]], truth: list[set[str]]) -> float:
    return float(np.mean([len(set(f) & t) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]))


def search_row(system, data: Batch, vectors: np.ndarray) -> dict:
    for vector in vectors[:20]:
        system.search(vector, 10)  # warm-up: caches, first-touch of pages
    times, found = timed_searches(system, vectors)
    row = {
        "p50_ms": _ms(statistics.median(times)),
        "p99_ms": _ms(np.percentile(times, 99)),
        "recall@10": round(recall(found, exact_top10(data, vectors)), 4),
    }
    for label, where in FILTERS.items():
        ((key, value),) = where.items()
        keep = np.array(getattr(data, key)) == value
        times, found = timed_searches(system, vectors, where)
        row[f"filtered_{label}_cold_ms"] = _ms(times[0])
        row[f"filtered_{label}_p50_ms"] = _ms(statistics.median(times[1:]))
        row[f"filtered_{label}_recall@10"] = round(recall(found, exact_top10(data, vectors, keep)), 4)
    return row


def write_row(system, n: int) -> dict:
    adds, deletes = [], []
    for repeat in range(REPEATS):
        new = batch(n + 100 * repeat, 100, version=1)
        start = time.perf_counter()
        system.add(new)
        adds.append(time.perf_counter() - start)
        start = time.perf_counter()
        system.delete([f"d{repeat * 7}"])
        deletes.append(time.perf_counter() - start)
    return {"add100_ms": _ms(statistics.median(adds)), "delete1_ms": _ms(statistics.median(deletes))}


def disk_row(system, n: int) -> dict:
    start = time.perf_counter()
    system.compact()
    seconds = time.perf_counter() - start
    live = batch(0, n + 100 * REPEATS)
    raw = live.vectors.nbytes + sum(len(t.encode()) for t in live.texts)
    raw += sum(len(json.dumps({"g10": a, "g100": b})) for a, b in zip(live.g10, live.g100, strict=True))
    return {
        "compact_s": round(seconds, 2),
        "disk_MiB": round(system.disk() / 2**20, 1),
        "disk_vs_raw": round(system.disk() / raw, 3),
    }


def resolved(spec: str, n: int) -> str:
    """``IVF,...`` with the list count for ``n`` vectors (at least 39 training vectors per list, as faiss wants)."""
    if not spec.startswith("IVF,"):
        return spec
    lists = min(2 ** round(np.log2(4 * np.sqrt(n))), 2 ** int(np.log2(max(n // 39, 1))))
    return f"IVF{lists}," + spec.split(",", 1)[1]


def run_sizes(name: str, n: int, spec: str, work: Path) -> dict:
    spec = resolved(spec, n)
    system = SYSTEMS[name](fresh(work), spec)
    data = batch(0, n)
    start = time.perf_counter()
    system.build(data)
    row = {"system": name, "n": n, "spec": spec, "build_s": round(time.perf_counter() - start, 2)}
    system.open()
    vectors = queries()
    row.update(search_row(system, data, vectors))
    row.update(write_row(system, n))
    row.update(disk_row(system, n))
    return row


def run_upserts(name: str, n: int, spec: str, work: Path) -> dict:
    spec = resolved(spec, n)
    system = SYSTEMS[name](fresh(work), spec)
    system.build(batch(0, n))
    system.open()
    vectors = queries()
    start = time.perf_counter()
    for i in range(1000):
        one = batch(i * 37 % n, 1, version=2)
        (system.upsert if hasattr(system, "upsert") else system.add)(one)
    total = time.perf_counter() - start
    times, _ = timed_searches(system, vectors)
    row = {
        "system": name,
        "n": n,
        "spec": spec,
        "scenario": "1000-upserts",
        "total_s": round(total, 2),
        "segments": system.segments(),
        "p50_ms": _ms(statistics.median(times)),
    }
    system.compact()
    times, _ = timed_searches(system, vectors)
    row["compacted_p50_ms"] = _ms(statistics.median(times))
    row["p50_vs_compacted"] = round(row["p50_ms"] / row["compacted_p50_ms"], 2)
    return row


def run_segments(name: str, n: int, spec: str, work: Path) -> dict:
    from embedsearch.index import CompactionPolicy

    rows = {}
    data, vectors = batch(0, n), queries()
    spec = resolved(spec, n // 32)  # IVF trains on the first segment, a 32nd of the documents
    for parts in (1, 8, 32):
        system = SYSTEMS[name](fresh(work), spec, compaction=CompactionPolicy(max_segments=10**6))
        cuts = np.array_split(np.arange(n), parts)
        system.build(batch(0, len(cuts[0])))
        for cut in cuts[1:]:
            system.add(batch(int(cut[0]), len(cut)), compact=False)
        system.open()
        times, found = timed_searches(system, vectors)
        rows[f"{parts}_segments"] = {
            "segments": system.segments(),
            "p50_ms": _ms(statistics.median(times)),
            "recall@10": round(recall(found, exact_top10(data, vectors)), 4),
        }
    return {"system": name, "n": n, "spec": spec, "scenario": "segments", **rows}


SCENARIOS = {"sizes": run_sizes, "upserts": run_upserts, "segments": run_segments}


def _ms(seconds: float) -> float:
    return round(float(seconds) * 1000, 3)


def child(config: dict) -> None:
    from embedsearch.runtime import use_batch_threads

    use_batch_threads()
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as work:
        row = SCENARIOS[config["scenario"]](config["system"], config["n"], config["spec"], Path(work))
    print(json.dumps(row))


def configurations(args) -> list[dict]:
    configs = []
    for n in args.sizes:
        for name in args.systems:
            for spec in args.specs if name == "embedsearch" else ["-"]:
                configs.append({"scenario": "sizes", "system": name, "n": n, "spec": spec})
    if args.upsert_size:
        for name in args.systems:
            for spec in args.specs if name == "embedsearch" else ["-"]:
                configs.append({"scenario": "upserts", "system": name, "n": args.upsert_size, "spec": spec})
        for spec in args.specs if "embedsearch" in args.systems else []:
            configs.append({"scenario": "segments", "system": "embedsearch", "n": args.upsert_size, "spec": spec})
    return configs


def run(config: dict, timeout: float) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(config)]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**config, "error": f"not finished after {timeout:.0f} s"}
    if result.returncode != 0:
        return {**config, "error": f"exit {result.returncode} (its stderr is above)"}
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall_s": round(time.perf_counter() - start, 1)}


def show(row: dict) -> None:
    keys = [k for k in row if k not in ("system", "n", "spec", "scenario")]
    head = f"{row.get('scenario', 'sizes'):9} {row['system']:12} {row['n']:>8} {row['spec']:14}"
    print(head + "  " + "  ".join(f"{k}={row[k]}" for k in keys), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--specs", type=lambda v: v.split(";"), default=list(SPECS), help="';'-separated faiss specs")
    parser.add_argument("--systems", type=lambda v: v.split(","), default=list(SYSTEMS))
    parser.add_argument("--upsert-size", type=int, default=100_000, help="0: skip the upsert and segment runs")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    rows = []
    for config in configurations(args):
        rows.append(run(config, args.timeout))
        show(rows[-1])
        _save(args.out, rows)


def _save(out: Path, rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": _cpus(), "date": time.strftime("%Y-%m-%d")}
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")


def _cpus() -> str:
    import os

    return f"{len(os.sched_getaffinity(0))} cores"


if __name__ == "__main__":
    main()
