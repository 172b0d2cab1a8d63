"""Image–text training on the emoji set: unseen concepts and an unseen drawing style, how long it takes, and how
fast it trains next to open_clip's own training loop.

Configurations, side by side in one run, each in its own child process:

* ``unseen-concepts``: ``train_clip`` on the train-split ids of all three vendors; evaluated on the test-split
  ids (all three vendors' images), which nothing in training saw.
* ``heldout-<vendor>`` (``--heldout``, default facebook): ``train_clip`` on the train-split ids of the two
  other vendors; evaluated on the held-out vendor's images of the train-split ids and of the test-split ids.
* ``throughput-embedsearch`` / ``throughput-open_clip``: ``--throughput-steps`` steps of the same model config
  (the default: es-resnet-32, MiniLM text tower locked), batch, learning rate and augmentation on the first
  batch x steps training images, without validation (ours with its default mixup and all-caption negatives,
  which open_clip_train has not: it runs open_clip's ``ClipLoss``): ``train_clip``, then open_clip_train's own
  ``train_one_epoch`` (the ``open_clip_train`` package the open-clip-torch wheel installs, or the copy under
  ``--open-clip-train-src``) on open_clip's ``CustomTextCLIP`` with ``lock_text_tower``, ``create_loss``,
  AdamW groups and ``cosine_lr`` as its ``main.py`` makes them, fed by an in-memory loader that yields
  (augmented images, tokenized captions) batches; alternated ``--repeats`` times, the medians are compared.
  Ours embeds each caption once with the locked text tower before step 1 (not counted in its samples/s);
  open_clip_train runs the text tower on every batch.

Training uses ``ClipTrainConfig``'s defaults, whatever they are when the benchmark runs (what ``embedsearch train
clip`` runs without options, a held-out ``val_fraction`` of the training captions choosing the best checkpoint)
but for ``pairs``, ``out`` and ``seed``; the settings used are printed and stored with each row. ``--epochs``,
``--max-steps`` and ``--limit`` are for smoke runs only: the output then says loudly that the targets were not
measured.

Evaluation loads the trained model with ``get_encoder(out)``. The caption gallery is all 1,911 distinct
captions of captions.jsonl (CLDR short names): image->text R@k counts an image when the caption of its id is
among the k best of the 1,911. Text->image R@k takes as queries the captions that have an image in the
evaluated set and ranks the evaluated images. For ``unseen-concepts`` image->text is also given against the
382 test captions alone (the set's own captions: what ``embedsearch eval pairs`` on those lines reports).
Derived pairs files go to a temporary folder, never into the repository.

    python benchmarks/bench_train_clip.py      # two default trainings (each meant to take < 20 min) + throughput
    nice -n 10 python benchmarks/bench_train_clip.py --epochs 1 --limit 300 --throughput-steps 2 --repeats 1 \\
        --out /tmp/bench-clip/bench_train_clip.json     # smoke, ~6 min on 2 busy cores

Prints one line per configuration (and per evaluated set), checks against the targets, and writes
benchmarks/results/bench_train_clip.json, clip_heldout_examples.png (held-out images with their top-3
captions) and clip_heldout_training_curves.png next to it. The scoring and the figure are in
``emoji_retrieval.py``, open_clip_train's side of the throughput comparison in ``open_clip_train_loop.py``.
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
from emoji_retrieval import KS, plot_examples, retrieval
from open_clip_train_loop import throughput_open_clip

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data")) / "emoji"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "bench_train_clip.json"
VENDORS = ("apple", "google", "facebook")
TARGETS = {"train ids": 0.55, "test ids": 0.06}  # held-out vendor, image->text R@1 over all 1,911 captions
TARGET_TRAIN_S = 20 * 60
SHOWN_SETTINGS = ("model", "batch_size", "epochs", "max_steps", "lr", "crop_scale", "jitter", "val_fraction", "limit")


def main() -> None:
    args = _parse()
    if args.child:
        print(json.dumps(_run_child(args.child[0], json.loads(Path(args.child[1]).read_text()))))
        return
    if args.threads:
        os.environ["EMBEDSEARCH_THREADS"] = str(args.threads)  # the children's batch thread count
    if not (args.data / "captions.jsonl").is_file():
        sys.exit(f"no emoji data at {args.data} (captions.jsonl missing): pass --data or set EMBEDSEARCH_DATA")
    work = Path(tempfile.mkdtemp(prefix="bench-train-clip-"))
    spec = _spec(args, work)
    overrides = json.loads(spec.read_text())["overrides"]
    if overrides:
        print(f"!!! smoke settings {_shown(overrides)}: NOT the command's defaults", file=sys.stderr, flush=True)
    rows = [_child("unseen-concepts", spec), _child(f"heldout-{args.heldout}", spec)]
    throughput = [_child(config, spec) for _ in range(args.repeats) for config in _throughput_configs(args)]
    _report(rows, throughput, json.loads(spec.read_text()), args.out)
    if args.keep:
        print(f"trained models and pairs files kept in {work}")
    else:
        shutil.rmtree(work)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the emoji folder (captions.jsonl, images/)")
    parser.add_argument("--heldout", choices=VENDORS, default="facebook", help="the vendor left out of training")
    parser.add_argument("--seed", type=int, default=42)
    smoke = parser.add_argument_group("smoke runs only (the targets are about the defaults)")
    smoke.add_argument("--epochs", type=int, help="override the default epochs")
    smoke.add_argument("--max-steps", type=int, help="override: stop training after N steps")
    smoke.add_argument("--limit", type=int, help="train on the first N images, evaluate on the first N of each set")
    parser.add_argument("--throughput-steps", type=int, default=20, help="steps of each throughput run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating throughput runs of each trainer")
    parser.add_argument("--no-open-clip", action="store_true", help="skip open_clip_train's train_one_epoch")
    parser.add_argument(
        "--open-clip-train-src",
        type=Path,
        help="a folder holding the open_clip_train package (e.g. open_clip's src/), if it is not importable",
    )
    parser.add_argument("--threads", type=int, help="EMBEDSEARCH_THREADS for every child (default: all cores)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (trained models, pairs files)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON; the two PNGs go next to it")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "SPEC"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _spec(args: argparse.Namespace, work: Path) -> Path:
    """Write the derived pairs files (absolute image paths) and the settings every child reads."""
    captions = args.data / "captions.jsonl"
    records = []
    for line in captions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records.append({**record, "image": str((args.data / record["image"]).resolve()), "text": record["text"]})
    train = [r for r in records if r["split"] == "train"]
    files = {
        "all": _write_pairs(work / "all.jsonl", records),
        "train_3vendors": _write_pairs(work / "train-3vendors.jsonl", train),
        "train_heldout": _write_pairs(
            work / f"train-heldout-{args.heldout}.jsonl", [r for r in train if r["vendor"] != args.heldout]
        ),
    }
    overrides = {k: getattr(args, k) for k in ("epochs", "max_steps", "limit") if getattr(args, k) is not None}
    out = args.out.resolve()
    spec = {
        "data": str(args.data.resolve()),
        "work": str(work),
        "heldout": args.heldout,
        "seed": args.seed,
        "overrides": overrides,
        "limit": args.limit,
        "throughput_steps": args.throughput_steps,
        "open_clip_train_src": str(args.open_clip_train_src.resolve()) if args.open_clip_train_src else None,
        "examples_png": str(out.parent / "clip_heldout_examples.png"),
        "curves_png": str(out.parent / "clip_heldout_training_curves.png"),
        **{k: str(v) for k, v in files.items()},
    }
    path = work / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _write_pairs(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _throughput_configs(args: argparse.Namespace) -> list[str]:
    configs = ["throughput-embedsearch"]
    if args.no_open_clip:
        return configs
    if args.open_clip_train_src:
        sys.path.insert(0, str(args.open_clip_train_src.resolve()))
    if importlib.util.find_spec("open_clip_train") is None:
        print(
            "skipping throughput-open_clip: the open_clip_train package is not importable; pass "
            "--open-clip-train-src with a folder that holds it (open_clip's src/)",
            file=sys.stderr,
        )
        return configs
    return [*configs, "throughput-open_clip"]


def _child(config: str, spec: Path) -> dict:
    return run_child(__file__, config, spec)


def _run_child(config: str, spec: dict) -> dict:
    start = time.perf_counter()
    if config == "unseen-concepts":
        row = _unseen_concepts(spec)
    elif config.startswith("heldout-"):
        row = _heldout(spec)
    else:
        row = {"throughput-embedsearch": _throughput_ours, "throughput-open_clip": throughput_open_clip}[config](spec)
    return {"config": config, "wall_s": time.perf_counter() - start, **row}


# --- training and evaluation ------------------------------------------------------------------------------------
def _unseen_concepts(spec: dict) -> dict:
    records = _records(spec["all"])
    test = [r for r in records if r["split"] == "test"]
    row, _, _ = _train_and_evaluate("unseen-concepts", spec["train_3vendors"], {"test ids": test}, spec)
    return row


def _heldout(spec: dict) -> dict:
    vendor = spec["heldout"]
    images = [r for r in _records(spec["all"]) if r["vendor"] == vendor]
    sets = {split + " ids": [r for r in images if r["split"] == split] for split in ("train", "test")}
    row, encoder, texts = _train_and_evaluate(f"heldout-{vendor}", spec["train_heldout"], sets, spec)
    out = Path(spec["work"]) / f"heldout-{vendor}"
    Path(spec["curves_png"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "training_curves.png", spec["curves_png"])
    plot_examples(encoder, texts, sets, spec)
    return row


def _train_and_evaluate(name: str, pairs: str, sets: dict[str, list[dict]], spec: dict):
    """Train with the config's defaults (but for the smoke overrides), then score every evaluated set."""
    from embedsearch.encoders import get_encoder
    from embedsearch.train import ClipTrainConfig, train_clip

    out = Path(spec["work"]) / name
    config = ClipTrainConfig(pairs=pairs, out=out, seed=spec["seed"], **spec["overrides"])
    start = time.perf_counter()
    result = train_clip(config)
    call_s = time.perf_counter() - start
    encoder = get_encoder(str(out))
    texts = _gallery(spec)
    index = {text: i for i, text in enumerate(texts)}
    text_vectors = encoder.encode_text(texts, progress="all captions")
    evaluations = {}
    for set_name, records in sets.items():
        records = records[: spec["limit"]] if spec["limit"] else records
        image_vectors = encoder.encode_image([r["image"] for r in records], progress=set_name)
        evaluations[set_name] = retrieval(image_vectors, text_vectors, [index[r["text"].strip()] for r in records])
    data = result.card.get("data", {})
    settings = {k: v for k, v in config.settings().items() if k not in ("out", "pairs")}
    row = {
        "train_pairs": Path(pairs).name,
        "train": data.get("train"),
        "val": data.get("val"),
        "steps": result.steps,
        "best_step": result.best_step,
        "best_val": result.best_metrics,
        "val_mean_recall": {e["step"]: e["metrics"]["mean_recall"] for e in result.evaluations},
        "train_call_s": call_s,  # the whole train_clip call: decoding, caption features, steps, validation, saving
        "train_loop_s": result.wall_seconds,  # the loop alone (steps and validation)
        "samples_per_s": result.samples_per_second,
        "skipped_images": result.skipped_images,
        "defaults": not spec["overrides"],
        "overrides": spec["overrides"],
        "settings": settings,
        "eval": evaluations,
    }
    return row, encoder, (texts, text_vectors)


def _records(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _gallery(spec: dict) -> list[str]:
    """Every distinct caption of captions.jsonl, first-seen order (1,911 short names)."""
    return list(dict.fromkeys(r["text"].strip() for r in _records(spec["all"])))


# --- throughput -------------------------------------------------------------------------------------------------
def _throughput_ours(spec: dict) -> dict:
    from embedsearch.train import ClipTrainConfig, train_clip

    out = Path(tempfile.mkdtemp(dir=spec["work"])) / "model"
    defaults = ClipTrainConfig(pairs=spec["train_3vendors"], out=out)
    config = ClipTrainConfig(
        pairs=spec["train_3vendors"],
        out=out,
        seed=spec["seed"],
        max_steps=spec["throughput_steps"],
        limit=defaults.batch_size * spec["throughput_steps"],
        val_fraction=0.0,
        quiet=True,
    )
    start = time.perf_counter()
    result = train_clip(config)
    call_s = time.perf_counter() - start
    return {
        "steps": result.steps,
        "batch_size": config.batch_size,
        "samples_per_s": result.samples_per_second,
        "call_s": call_s,  # with decoding, model building, the one-off caption features and saving
    }


# --- report -----------------------------------------------------------------------------------------------------
def _report(rows: list[dict], throughput: list[dict], spec: dict, out: Path) -> None:
    _print_training(rows, spec["overrides"])
    _print_recalls(rows, spec["heldout"])
    _print_checks(rows, spec["overrides"])
    medians = _print_throughput(throughput)
    out.parent.mkdir(parents=True, exist_ok=True)
    overrides = spec["overrides"]
    settings = {"heldout": spec["heldout"], "seed": spec["seed"], "defaults": not overrides, "overrides": overrides}
    result = {"settings": settings, "rows": rows, "throughput": throughput, "medians": medians, "machine": _machine()}
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}, {Path(spec['examples_png']).name} and {Path(spec['curves_png']).name}")


def _print_training(rows: list[dict], overrides: dict) -> None:
    print(f"{'config':<22}{'images':>7}{'steps':>7}{'best':>6}{'train_s':>9}{'loop_s':>9}{'samples/s':>11}")
    for row in rows:
        images = (row.get("train") or {}).get("images", "")
        print(
            f"{row['config']:<22}{images:>7}{row['steps']:>7}{row['best_step']:>6}{row['train_call_s']:>9.1f}"
            f"{row['train_loop_s']:>9.1f}{row['samples_per_s']:>11.1f}"
        )
    used = rows[0]["settings"]
    shown = ", ".join(f"{k} {used[k]}" for k in SHOWN_SETTINGS if k in used)
    print(f"settings ({'the defaults' if not overrides else 'SMOKE, not the defaults'}): {shown}")
    print()


def _print_recalls(rows: list[dict], heldout: str) -> None:
    head = "".join(f"{f'{way} R@{k}':>10}" for way in ("i2t", "t2i") for k in KS)
    print(f"{'config':<22}{'evaluated on':<22}{'images':>7}{'gallery':>8}{head}")
    for row in rows:
        for set_name, m in row["eval"].items():
            what = f"{set_name}, " + ("3 vendors" if row["config"] == "unseen-concepts" else heldout)
            i2t = "".join(f"{m[f'image_to_text_R@{k}']:>10.3f}" for k in KS)
            t2i = "".join(f"{m[f'text_to_image_R@{k}']:>10.3f}" for k in KS)
            print(f"{row['config']:<22}{what:<22}{m['images']:>7}{m['gallery']:>8}{i2t}{t2i}")
            if row["config"] == "unseen-concepts":
                own = "".join(f"{m[f'image_to_text_R@{k}_own_captions']:>10.3f}" for k in KS)
                print(f"{'':<22}{what:<22}{m['images']:>7}{m['own_captions']:>8}{own}  (the set's own captions)")
    print()


def _print_checks(rows: list[dict], overrides: dict) -> None:
    heldout = rows[1]
    for set_name, target in TARGETS.items():
        value = heldout["eval"][set_name]["image_to_text_R@1"]
        verdict = "meets" if value >= target else "MISSES"
        print(f"image->text R@1 heldout {set_name} {value:.3f} (target >= {target:.2f}: {verdict})")
    for row in rows:
        wall = row["train_call_s"]
        verdict = "meets" if wall < TARGET_TRAIN_S else "MISSES"
        print(f"training wall {row['config']} {wall:.1f} s (target < {TARGET_TRAIN_S // 60} min: {verdict})")
    if overrides:
        print(f"!!! smoke settings {_shown(overrides)}: NOT the command's defaults; the checks above measure nothing")


def _print_throughput(throughput: list[dict]) -> dict[str, float]:
    """One line per trainer (the median of its alternating runs) and their ratio; returns the medians."""
    medians = {}
    for config in dict.fromkeys(r["config"] for r in throughput):
        speeds = [r["samples_per_s"] for r in throughput if r["config"] == config]
        medians[config] = statistics.median(speeds)
        shown = ", ".join(f"{s:.1f}" for s in speeds)
        first = next(r for r in throughput if r["config"] == config)
        print(
            f"{config:<22}{first['steps']:>7} steps of {first['batch_size']}{medians[config]:>11.1f} samples/s "
            f"(median of {shown})"
        )
    if "throughput-open_clip" in medians:
        ratio = medians["throughput-embedsearch"] / medians["throughput-open_clip"]
        print(f"training speed of embedsearch over open_clip_train's train_one_epoch: {ratio:.2f}x")
        print(
            "  note: embedsearch embeds each caption once with the locked text tower before step 1 (not in its "
            "samples/s); open_clip_train runs the text tower on every batch"
        )
    return medians


def _shown(overrides: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items())


def _machine() -> dict:
    import open_clip
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "embedsearch_threads": os.environ.get("EMBEDSEARCH_THREADS"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }


if __name__ == "__main__":
    main()
