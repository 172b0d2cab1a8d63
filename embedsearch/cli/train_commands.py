"""``embedsearch train text`` (a group, so that other modalities can add ``train clip`` and the like)."""

from __future__ import annotations

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import quiet_option

positive_float = click.FloatRange(min=0, min_open=True)


@cli.group()
def train() -> None:
    """Train encoders; the result is a model directory to use as --encoder DIR."""


@train.command("text")
@click.option(
    "--data", type=click.Path(), required=True, help="Pairs JSONL, a BEIR folder, or (self-supervised) a corpus."
)
@click.option("--out", type=click.Path(), required=True, help="Model directory to write (written at the end).")
@click.option("--base", default="minilm", show_default=True, help="Encoder name or sentence-transformers directory.")
@click.option("--negatives", type=click.Path(dir_okay=False), help="Mined negatives (JSONL of embedsearch mine).")
@click.option("--self-supervised", type=click.Choice(["crop", "dropout"]), help="Train on unlabelled text.")
@click.option("--split", default="train", show_default=True, help="BEIR qrels split to train on.")
@click.option("--dev", type=click.Path(), help="Dev pairs JSONL or BEIR folder [default: a split of the data].")
@click.option("--dev-split", default="dev", show_default=True, help="BEIR qrels split of --dev.")
@click.option("--dev-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--dev-corpus-size", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Global batch.")
@click.option("--hard-negatives", type=click.IntRange(min=0), default=1, show_default=True, help="Per pair.")
@click.option("--cache-chunk", type=click.IntRange(min=1), help="GradCache: embed the batch N texts at a time.")
@click.option("--temperature", type=positive_float, default=0.05, show_default=True)
@click.option("--lr", type=positive_float, default=2e-5, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N steps (overrides --epochs).")
@click.option("--max-length", type=click.IntRange(min=8), help="Truncate texts to N tokens while training.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--save-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N training pairs.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (or an interrupted run).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run that writes --out.")
@quiet_option
def text(**options) -> None:
    """Train a text encoder contrastively (symmetric InfoNCE, in-batch and hard negatives)."""
    from embedsearch.train import TextTrainConfig, train_text

    result = train_text(TextTrainConfig(**options))
    first = result.evaluations[0] if result.evaluations else None
    best = (
        f"best dev nDCG@10 {result.best_metrics['ndcg@10']:.4f} at step {result.best_step}" if first else "no dev set"
    )
    base = f" (base {first['metrics']['ndcg@10']:.4f})" if first and first["step"] == 0 else ""
    click.echo(
        f"trained {result.steps} steps in {result.wall_seconds:.1f}s ({result.samples_per_second:.1f} samples/s); "
        f"{best}{base}; model written to {result.out}"
    )
