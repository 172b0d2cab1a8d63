"""Benchmark the FAISS index specs that embedsearch's ``auto`` spec chooses between.

What it measures, for each collection size n and each index spec (built with
``faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)``):

* single-query search latency (one query per ``search`` call, k=10, one OpenMP
  thread), reported as p50 and p99 in milliseconds over the query set;
* recall@10 of the approximate specs against the exact ``Flat`` results;
* build time in seconds (training + adding, all OpenMP threads);
* index memory, as the byte size of ``faiss.serialize_index(index)``, and bytes
  per vector.

The specs are ``Flat``, ``HNSW32,Flat`` (efSearch 64 and 128),
``IVF{nlist},Flat`` with nlist ~ 4*sqrt(n) (nprobe 16) and, from n >= 20k,
``IVF{nlist},PQ{dim//8}np`` (nprobe 16; the ``np`` suffix turns off the
polysemous training that index_factory otherwise runs for PQ, which made the
build ~30x slower and is not used by ordinary search).  The data are synthetic clustered
unit-norm float32 vectors shaped like sentence embeddings: 200 random cluster
centres plus within-cluster noise that lies mostly in a shared low-dimensional
subspace (real embeddings have a low intrinsic dimension), plus a little
isotropic noise; the queries are held-out points from the same distribution.
The seed is fixed, so reruns produce the same data.

At the end it prints the smallest n at which Flat's p50 latency exceeds 2 ms
while HNSW32 (efSearch 64) keeps recall@10 >= 0.95 -- the size at which
``auto`` should switch from exact to HNSW search -- and the bytes per vector of
each spec, from which a memory-budget rule can be derived.

Run it from the repository root (about 3-4 minutes on 2 cores)::

    python benchmarks/bench_auto_spec.py
    python benchmarks/bench_auto_spec.py --sizes 1000,5000 --queries 100 --out /tmp/auto_spec.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

DEFAULT_SIZES = (1_000, 5_000, 20_000, 50_000, 100_000, 200_000)
K = 10
SEED = 1234
N_CLUSTERS = 200
LATENT_DIM = 32  # dimension of the shared subspace the within-cluster noise lives in
LATENT_SCALE = 0.7  # norm of the within-cluster noise, relative to the unit-norm centre
ISO_SCALE = 0.15  # norm of the isotropic noise, relative to the unit-norm centre
WARMUP_QUERIES = 10
FLAT_P50_LIMIT_MS = 2.0
HNSW_MIN_RECALL = 0.95
PQ_MIN_N = 20_000
BUILD_THREADS = faiss.omp_get_max_threads()


@dataclass
class Row:
    n: int
    spec: str
    param: str
    build_s: float
    index_bytes: int
    bytes_per_vector: float
    p50_ms: float
    p99_ms: float
    recall_at_10: float


@dataclass
class Case:
    spec: str
    params: list[str]  # faiss ParameterSpace strings, e.g. "efSearch=64"; "" means none
    train_size: int  # vectors used for training (0: the spec needs no training)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated collection sizes")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/auto_spec.json")
    parser.add_argument(
        "--pq-max-build-s",
        type=float,
        default=60.0,
        help="skip IVF-PQ at larger n once one build took longer than this",
    )
    return parser.parse_args()


def normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(n_base: int, n_queries: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit-norm float32 vectors: base set and held-out queries."""
    rng = np.random.default_rng(SEED)
    centres = normalise(rng.standard_normal((N_CLUSTERS, dim), dtype=np.float32))
    basis = rng.standard_normal((LATENT_DIM, dim), dtype=np.float32) / math.sqrt(dim)

    def sample(m: int) -> np.ndarray:
        labels = rng.integers(N_CLUSTERS, size=m)
        latent = rng.standard_normal((m, LATENT_DIM), dtype=np.float32)
        latent *= LATENT_SCALE / math.sqrt(LATENT_DIM)
        iso = rng.standard_normal((m, dim), dtype=np.float32) * (ISO_SCALE / math.sqrt(dim))
        return normalise(centres[labels] + latent @ basis + iso)

    return sample(n_base), sample(n_queries)


def ivf_nlist(n: int) -> int:
    """~4*sqrt(n) lists, capped so k-means gets >= 39 training points per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def cases_for(n: int, dim: int, with_pq: bool) -> list[Case]:
    nlist = ivf_nlist(n)
    ivf_train = min(n, 40 * nlist)
    cases = [
        Case("Flat", [""], 0),
        Case("HNSW32,Flat", ["efSearch=64", "efSearch=128"], 0),
        Case(f"IVF{nlist},Flat", ["nprobe=16"], ivf_train),
    ]
    if with_pq and n >= PQ_MIN_N:
        pq_train = max(ivf_train, min(n, 40 * 256))  # PQ k-means has 256 centroids per sub-quantizer
        # "np": without it index_factory enables polysemous training, ~30x slower and unused by search
        cases.append(Case(f"IVF{nlist},PQ{dim // 8}np", ["nprobe=16"], pq_train))
    return cases


def build(case: Case, xb: np.ndarray) -> tuple[faiss.Index, float]:
    """Build with all OpenMP threads; train on a fixed random sample when needed."""
    faiss.omp_set_num_threads(BUILD_THREADS)
    start = time.perf_counter()
    index = faiss.index_factory(xb.shape[1], case.spec, faiss.METRIC_INNER_PRODUCT)
    if case.train_size:
        sample = np.random.default_rng(SEED).choice(len(xb), case.train_size, replace=False)
        index.train(xb[np.sort(sample)])
    index.add(xb)
    return index, time.perf_counter() - start


def single_query_search(index: faiss.Index, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Search one query at a time on one thread; return latencies (ms) and result ids."""
    faiss.omp_set_num_threads(1)
    for i in range(min(WARMUP_QUERIES, len(xq))):
        index.search(xq[i : i + 1], K)
    latencies = np.empty(len(xq))
    ids = np.empty((len(xq), K), dtype=np.int64)
    for i in range(len(xq)):
        start = time.perf_counter()
        _, ids[i : i + 1] = index.search(xq[i : i + 1], K)
        latencies[i] = (time.perf_counter() - start) * 1e3
    return latencies, ids


def recall_at_k(ids: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(found, true)) for found, true in zip(ids, truth, strict=True))
    return hits / truth.size


def run_case(
    n: int, case: Case, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray | None
) -> tuple[list[Row], np.ndarray]:
    """Build one spec and search it at each parameter; the first Flat run supplies the truth."""
    index, build_s = build(case, xb)
    index_bytes = int(faiss.serialize_index(index).size)
    rows = []
    for param in case.params:
        if param:
            faiss.ParameterSpace().set_index_parameters(index, param)
        latencies, ids = single_query_search(index, xq)
        recall = 1.0 if truth is None else recall_at_k(ids, truth)
        p50, p99 = np.percentile(latencies, [50, 99])
        rows.append(
            Row(
                n,
                case.spec,
                param or "-",
                build_s,
                index_bytes,
                index_bytes / n,
                float(p50),
                float(p99),
                recall,
            )
        )
        if truth is None:
            truth = ids
    return rows, truth


HEADER = (
    f"{'n':>8} {'spec':<18} {'param':<13} {'build_s':>8} {'MiB':>8} {'B/vec':>7} "
    f"{'p50_ms':>7} {'p99_ms':>7} {'R@10':>6}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.n:>8} {r.spec:<18} {r.param:<13} {r.build_s:>8.2f} {r.index_bytes / 2**20:>8.1f} "
        f"{r.bytes_per_vector:>7.0f} {r.p50_ms:>7.3f} {r.p99_ms:>7.3f} {r.recall_at_10:>6.3f}"
    )


def run_size(n: int, xb: np.ndarray, xq: np.ndarray, with_pq: bool) -> list[Row]:
    rows: list[Row] = []
    truth = None
    for case in cases_for(n, xb.shape[1], with_pq):
        case_rows, truth = run_case(n, case, xb, xq, truth)
        for row in case_rows:
            print(format_row(row), flush=True)
        rows += case_rows
    return rows


def recommend(rows: list[Row]) -> int | None:
    """Smallest n with Flat p50 > 2 ms and HNSW32 (efSearch=64) recall@10 >= 0.95."""
    flat = {r.n: r for r in rows if r.spec == "Flat"}
    hnsw = {r.n: r for r in rows if r.spec == "HNSW32,Flat" and r.param == "efSearch=64"}
    for n in sorted(flat):
        if flat[n].p50_ms > FLAT_P50_LIMIT_MS and n in hnsw and hnsw[n].recall_at_10 >= HNSW_MIN_RECALL:
            return n
    return None


def flat_crossover(rows: list[Row]) -> float | None:
    """n where a straight-line fit of Flat p50 against n reaches the 2 ms limit."""
    flat = [(r.n, r.p50_ms) for r in rows if r.spec == "Flat"]
    if len(flat) < 2:
        return None
    slope, intercept = np.polyfit(*zip(*flat, strict=True), deg=1)
    return (FLAT_P50_LIMIT_MS - intercept) / slope if slope > 0 else None


def spec_family(spec: str) -> str:
    return spec if not spec.startswith("IVF") else "IVF{nlist}," + spec.split(",", 1)[1]


def print_summary(rows: list[Row], dim: int) -> None:
    threshold = recommend(rows)
    crossover = flat_crossover(rows)
    print(
        f"\nrecommended auto threshold (Flat p50 > {FLAT_P50_LIMIT_MS} ms and HNSW32 ef64 "
        f"R@10 >= {HNSW_MIN_RECALL}): " + (f"n >= {threshold}" if threshold else "not reached")
    )
    if crossover:
        print(f"linear fit of Flat p50: reaches {FLAT_P50_LIMIT_MS} ms at n ~ {crossover:,.0f}")
    largest: dict[str, Row] = {}
    for r in sorted(rows, key=lambda r: r.n):
        largest[spec_family(r.spec)] = r
    print(f"\nbytes per vector at the largest n (raw float32 vector = 4*d = {4 * dim} B):")
    for family, r in largest.items():
        print(f"  {family:<20} {r.bytes_per_vector:8.1f} B/vec  (n={r.n}, {r.bytes_per_vector - 4 * dim:+.1f} vs raw)")


def write_json(rows: list[Row], args: argparse.Namespace, wall_s: float) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "dim": args.dim,
        "queries": args.queries,
        "k": K,
        "seed": SEED,
        "n_clusters": N_CLUSTERS,
        "latent_dim": LATENT_DIM,
        "latent_scale": LATENT_SCALE,
        "iso_scale": ISO_SCALE,
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "build_threads": BUILD_THREADS,
        "search_threads": 1,
        "wall_s": wall_s,
        "recommended_threshold": recommend(rows),
        "flat_p50_crossover_n": flat_crossover(rows),
    }
    out.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    print(f"\nwrote {len(rows)} rows to {out}")


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    xb_all, xq = make_data(max(sizes), args.queries, args.dim)
    print(
        f"dim={args.dim} queries={args.queries} k={K} faiss={faiss.__version__} "
        f"build_threads={BUILD_THREADS} search_threads=1"
    )
    print(HEADER)
    rows: list[Row] = []
    with_pq = True
    for n in sizes:
        size_rows = run_size(n, xb_all[:n], xq, with_pq)
        pq_builds = [r.build_s for r in size_rows if ",PQ" in r.spec]
        if pq_builds and pq_builds[0] > args.pq_max_build_s and n < sizes[-1]:
            print(f"# IVF-PQ build took {pq_builds[0]:.0f} s (> {args.pq_max_build_s:.0f} s): skipped beyond n={n}")
            with_pq = False
        rows += size_rows
    wall_s = time.perf_counter() - start
    print_summary(rows, args.dim)
    write_json(rows, args, wall_s)
    print(f"wall time: {wall_s:.1f} s")


if __name__ == "__main__":
    main()
