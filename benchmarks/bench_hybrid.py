"""Hybrid retrieval on SciFact: dense, lexical (our FTS5 side) and both fused, next to bm25s on the same chunks.

One run, on the same index and the same chunks:

* **quality**: nDCG@10 (and R@100) of every mode on SciFact's *train* queries, which choose the default mode
  and fusion (the best on train), and on its *test* queries, which choose nothing and are reported.
  Hybrid: reciprocal rank fusion, and convex fusion at alpha 0.3, 0.5, 0.7. With ``--trained DIR`` the same for
  the encoder ``train text`` wrote (its index is built too; only test figures mean anything for it, since it
  was trained on the train queries).
* **lexical engines**: bm25s (its defaults: method lucene, k1 1.5, b 0.75; PyStemmer english, the same 33
  stopwords) on the chunk texts our lexical side holds, against our side: nDCG@10, single-query p50, and the
  cost of adding one document (bm25s has no incremental add: it re-indexes the corpus; we add one segment and
  its rows in one transaction).
* **latency**: p50/p99 of single queries (query threads, encoding included) and per-query time of a batch of
  all test queries, dense against hybrid, alternated ``--repeats`` times.
* **build**: index build time and disk with and without the lexical side. Chunk vectors are cached on disk
  (``benchmarks/results/cache/``) after the first build, so later builds measure storage, not the model; the
  first build's encoding time is reported on its own.

    python benchmarks/bench_hybrid.py                          # about 15 min on 2 cores the first time
    python benchmarks/bench_hybrid.py --trained /tmp/model     # + the trained encoder (another ~10 min)
    python benchmarks/bench_hybrid.py --limit 300 --queries 20 --repeats 1   # smoke test, 2 min

Prints one line per row and writes benchmarks/results/bench_hybrid.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embedsearch.data import read_documents, read_qrels, read_queries  # noqa: E402
from embedsearch.encoders import Encoder, get_encoder  # noqa: E402
from embedsearch.index import StoredIndex, add_documents, build_index, delete_documents, index_info  # noqa: E402
from embedsearch.index.lexical import ENGLISH_STOPWORDS  # noqa: E402
from embedsearch.metrics import evaluate_run  # noqa: E402
from embedsearch.runtime import use_batch_threads, use_query_threads  # noqa: E402
from embedsearch.search import Searcher  # noqa: E402
from embedsearch.search.hits import best_chunk_per_document  # noqa: E402

DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data")) / "scifact"
CACHE = REPO / "benchmarks" / "results" / "cache"
RESULTS = REPO / "benchmarks" / "results" / "bench_hybrid.json"
INDEX = "scifact"
MODES = [
    ("dense", {"mode": "dense"}),
    ("lexical", {"mode": "lexical"}),
    ("hybrid-rrf", {"mode": "hybrid", "fusion": "rrf"}),
    ("hybrid-convex-0.3", {"mode": "hybrid", "fusion": "convex", "alpha": 0.3}),
    ("hybrid-convex-0.5", {"mode": "hybrid", "fusion": "convex", "alpha": 0.5}),
    ("hybrid-convex-0.7", {"mode": "hybrid", "fusion": "convex", "alpha": 0.7}),
]


class CachedEncoder(Encoder):
    """An encoder's vectors, remembered by text (on disk between runs): the same fingerprint, so an index built
    through it is the encoder's index; a text it has not seen is embedded by the encoder."""

    def __init__(self, inner: Encoder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.dim, self.max_tokens, self.modalities = (
            inner.name,
            inner.dim,
            inner.max_tokens,
            inner.modalities,
        )
        self.batch_size = inner.batch_size
        self.vectors: dict[str, np.ndarray] = {}
        if path.is_file():
            saved = np.load(path)
            self.vectors = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
        self.misses = 0

    def _fingerprint(self) -> str:
        return self.inner.fingerprint

    def token_spans_batch(self, texts):
        return self.inner.token_spans_batch(texts)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        missing = [i for i, key in enumerate(keys) if key not in self.vectors]
        if missing:
            self.misses += len(missing)
            fresh = self.inner.encode_text([texts[i] for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                self.vectors[keys[i]] = vector
        return np.stack([self.vectors[key] for key in keys])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.vectors), dtype="U40")
        np.savez(self.path.with_suffix(".tmp.npz"), keys=keys, vectors=np.stack(list(self.vectors.values())))
        os.replace(self.path.with_suffix(".tmp.npz"), self.path)


def main() -> None:
    args = _parse()
    documents = read_documents([str(args.data / "corpus.jsonl")]).documents[: args.limit]
    queries = read_queries(args.data / "queries.jsonl")
    splits = {s: read_qrels(args.data / "qrels" / f"{s}.tsv") for s in ("train", "test")}
    splits = {s: {q: j for q, j in qrels.items() if q in queries} for s, qrels in splits.items()}
    if args.queries:
        splits = {s: dict(list(qrels.items())[: args.queries]) for s, qrels in splits.items()}
    results: dict = {"machine": _machine(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": []}
    use_batch_threads()
    encoder = CachedEncoder(get_encoder(args.encoder), CACHE / f"hybrid-vectors-{_slug(args.encoder)}.npz")
    home = CACHE / f"indexes-{_slug(args.encoder)}"  # kept: `embedsearch mine scifact --home ...` reads it
    if args.only_latency:  # the index of an earlier run; its other results are kept
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else results
        results["latency"] = _latency(home, encoder, queries, splits["test"], args.repeats)
        RESULTS.write_text(json.dumps(results, indent=2))
        return
    if not args.only_trained:
        results["build"] = _builds(documents, encoder, home)
        results["quality"] = _quality(home, INDEX, encoder, queries, splits)
        results["choice"] = _choose(results["quality"])
        results["engines"] = _engines(home, documents, encoder, queries, splits["test"], args)
        results["latency"] = _latency(home, encoder, queries, splits["test"], args.repeats)
    if args.trained:
        trained = CachedEncoder(get_encoder(str(args.trained)), CACHE / f"hybrid-vectors-{_slug(args.trained)}.npz")
        trained_home = CACHE / f"indexes-{_slug(args.trained.resolve())}"
        results["trained_build"] = _builds(documents, trained, trained_home, lexical_only=True)
        results["trained_quality"] = _quality(trained_home, INDEX, trained, queries, {"test": splits["test"]})
    out = args.out or RESULTS
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="SciFact in BEIR layout")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--trained", type=Path, help="a model directory of `train text` to evaluate as well")
    parser.add_argument("--limit", type=int, help="only the first N documents (smoke runs)")
    parser.add_argument("--queries", type=int, help="only the first N queries of each split (smoke runs)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated latency rounds")
    parser.add_argument("--only-trained", action="store_true", help="with --trained: skip the base model's rows")
    parser.add_argument("--only-latency", action="store_true", help="re-measure the latency rows on the kept index")
    parser.add_argument("--out", type=Path, help=f"results file [default: {RESULTS.relative_to(REPO)}]")
    return parser.parse_args()


def _slug(text) -> str:
    return hashlib.sha1(str(text).encode()).hexdigest()[:12]


def _builds(documents, encoder: CachedEncoder, home: Path, lexical_only: bool = False) -> dict:
    """Build with the lexical side (encoding whatever the cache lacks), then again with and without it from
    cached vectors; time and disk of each."""
    out = {}
    start = time.perf_counter()
    report = build_index(INDEX, documents, encoder, home=home, progress=True, overwrite=True)
    first = time.perf_counter() - start
    encoder.save()
    out["first_build_s"] = round(first, 2)
    out["first_build_encode_s"] = round(report.timings.get("encode", 0.0), 2)
    out["encoded_chunks"] = encoder.misses
    variants = [(INDEX, "auto")] if lexical_only else [(INDEX, "auto"), (f"{INDEX}-dense", None)]
    for name, lexical in variants:
        start = time.perf_counter()
        build_index(name, documents, encoder, home=home, overwrite=True, lexical=lexical)
        seconds = time.perf_counter() - start
        info = index_info(name, home)
        out[name] = {"build_s_cached_vectors": round(seconds, 2), "disk_MiB": round(info["disk_bytes"] / 2**20, 2)}
        print(f"build  {encoder.name:<28} {name:<11} {seconds:7.2f} s (vectors cached)  {out[name]['disk_MiB']} MiB")
    print(f"build  {encoder.name:<28} first build {first:.1f} s, of which encoding {out['first_build_encode_s']} s")
    return out


def _quality(home: Path, name: str, encoder, queries, splits) -> dict:
    searcher = Searcher(StoredIndex.open(name, home), encoder)
    out: dict = {}
    for split, qrels in splits.items():
        texts = [queries[q] for q in qrels]
        for label, options in MODES:
            hits = searcher.search_many(texts, k=100, highlight=False, **options)
            run = {q: {h.id: h.score for h in row} for q, row in zip(qrels, hits, strict=True)}
            metrics = evaluate_run(run, qrels)
            out[f"{split}/{label}"] = {k: round(v, 4) for k, v in metrics.items()}
            print(
                f"nDCG   {encoder.name:<28} {split:<5} {label:<18} nDCG@10 {metrics['ndcg@10']:.4f}  "
                f"R@100 {metrics['recall@100']:.4f}  ({len(qrels)} queries)"
            )
    searcher.close()
    return out


def _choose(quality: dict) -> dict:
    """The default mode: the best nDCG@10 on the train queries (never the test ones)."""
    train = {key.split("/", 1)[1]: value["ndcg@10"] for key, value in quality.items() if key.startswith("train/")}
    best = max(train, key=train.get)
    print(f"choice best on train queries: {best} (nDCG@10 {train[best]:.4f}); test figures chose nothing")
    return {"best_on_train": best, "train_ndcg@10": train}


def _chunk_texts(home: Path) -> tuple[list[int], list[str], dict[int, tuple[str, int, int]]]:
    index = StoredIndex.open(INDEX, home)
    with index.reading() as view:
        ids = view.store.live_chunk_ids().tolist()
        owners = view.chunk_owners(ids)
        docs = view.documents(sorted({o[0] for o in owners.values()}))
    index.close()
    texts = [docs[owners[i][0]].text[owners[i][1] : owners[i][2]] for i in ids]
    return ids, texts, owners


def _engines(home: Path, documents, encoder, queries, qrels, args) -> dict:
    import bm25s
    import Stemmer

    ids, texts, owners = _chunk_texts(home)
    stemmer, stopwords = Stemmer.Stemmer("english"), sorted(ENGLISH_STOPWORDS)
    start = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords=stopwords, stemmer=stemmer, show_progress=False), show_progress=False
    )
    bm25s_index_s = time.perf_counter() - start
    qids = list(qrels)
    depth = min(len(ids), 300)
    run, times = {}, []
    for q in qids:
        t0 = time.perf_counter()
        tokens = bm25s.tokenize([queries[q]], stopwords=stopwords, stemmer=stemmer, show_progress=False)
        found, scores = retriever.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
        times.append(time.perf_counter() - t0)
        chunk_ids = np.array([[ids[i] for i in found[0]]], dtype=np.int64)
        rows = best_chunk_per_document(scores.astype(np.float32), chunk_ids, owners, 100)[0]
        run[q] = {doc: float(score) for doc, score, _a, _b in rows}
    bm25s_metrics = evaluate_run(run, qrels)
    searcher = Searcher(StoredIndex.open(INDEX, home), encoder)
    use_query_threads()
    searcher.search(queries[qids[0]], k=100, mode="lexical")  # warm up, as bm25s was by its indexing
    ours, ours_times = {}, []
    for q in qids:
        t0 = time.perf_counter()
        hits = searcher.search(queries[q], k=100, mode="lexical")
        ours_times.append(time.perf_counter() - t0)
        ours[q] = {h.id: h.score for h in hits}
    searcher.close()
    ours_metrics = evaluate_run(ours, qrels)
    use_batch_threads()
    add_s = _add_one(home, documents, encoder)
    out = {
        "bm25s": {"ndcg@10": round(bm25s_metrics["ndcg@10"], 4), "p50_ms": _ms(times, 50), "index_s": bm25s_index_s},
        "fts5": {"ndcg@10": round(ours_metrics["ndcg@10"], 4), "p50_ms": _ms(ours_times, 50), "add1_s": add_s},
    }
    out["bm25s"]["add1_s"] = round(bm25s_index_s, 3)  # no incremental add: adding a document re-indexes
    for engine, row in out.items():
        print(
            f"engine {engine:<6} test nDCG@10 {row['ndcg@10']:.4f}  single-query p50 {row['p50_ms']:.2f} ms  "
            f"add one document {row['add1_s']:.3f} s"
        )
    gap = abs(out["bm25s"]["ndcg@10"] - out["fts5"]["ndcg@10"])
    print(f"engine nDCG@10 gap {gap:.4f} (target <= 0.005: {'met' if gap <= 0.005 else 'MISSED'})")
    return out


def _add_one(home: Path, documents, encoder) -> float:
    """One new document added to the lexical index (encoding it included, as a user's upsert)."""
    fresh = type(documents[0])(id="bench-new-document", text=documents[0].text + " (revised)", metadata={})
    start = time.perf_counter()
    add_documents(INDEX, [fresh], home=home, encoder=encoder, compact=False)
    seconds = time.perf_counter() - start
    delete_documents(INDEX, [fresh.id], home=home)  # the kept index stays the corpus (mining reads it)
    return round(seconds, 3)


def _latency(home: Path, encoder, queries, qrels, repeats: int) -> dict:
    """Dense against hybrid (and lexical), single queries and a batch, alternated; encoding included (the
    query texts are not in the vector cache: each query is embedded by the model)."""
    searcher = Searcher(StoredIndex.open(INDEX, home), encoder.inner)
    texts = [queries[q] for q in qrels]
    single: dict[str, list[float]] = {"dense": [], "hybrid": [], "lexical": []}
    batch: dict[str, list[float]] = {"dense": [], "hybrid": []}
    searcher.search(texts[0], k=10)  # warm up
    for _round in range(repeats):
        use_query_threads()
        for mode in single:
            for text in texts:
                t0 = time.perf_counter()
                searcher.search(text, k=10, mode=mode)
                single[mode].append(time.perf_counter() - t0)
        use_batch_threads()
        for mode in batch:
            t0 = time.perf_counter()
            searcher.search_many(texts, k=10, mode=mode, highlight=False)  # as `search --queries` does
            batch[mode].append((time.perf_counter() - t0) / len(texts))
    searcher.close()
    out = {f"single_{m}": {"p50_ms": _ms(v, 50), "p99_ms": _ms(v, 99)} for m, v in single.items()}
    out |= {f"batch_{m}": {"per_query_ms": round(statistics.median(v) * 1000, 3)} for m, v in batch.items()}
    for mode in single:
        row = out[f"single_{mode}"]
        print(f"query  single {mode:<8} p50 {row['p50_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms")
    for mode in batch:
        print(f"query  batch  {mode:<8} {out[f'batch_{mode}']['per_query_ms']:8.2f} ms per query")
    for kind, key in (("single p50", "single_{}"), ("batch", "batch_{}")):
        dense, hybrid = out[key.format("dense")], out[key.format("hybrid")]
        ratio = list(hybrid.values())[0] / list(dense.values())[0]
        print(f"query  hybrid/dense {kind}: {ratio:.2f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'})")
        out[f"ratio_{kind.replace(' ', '_')}"] = round(ratio, 3)
    return out


def _ms(values: list[float], q: int) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def _machine() -> dict:
    return {"python": platform.python_version(), "processor": platform.processor(), "cpus": os.cpu_count()}


if __name__ == "__main__":
    main()
