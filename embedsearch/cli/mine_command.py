"""``embedsearch mine``: hard negatives for the trainer, from an existing index."""

from __future__ import annotations

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import home_option, quiet_option


@cli.command()
@click.argument("name")
@click.option("--data", type=click.Path(), required=True, help="BEIR folder (qrels of --split) or pairs JSONL.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Pairs JSONL with negatives to write.")
@click.option("--split", default="train", show_default=True, help="BEIR qrels split.")
@click.option(
    "--range",
    "ranks",
    default="10-50",
    show_default=True,
    callback=lambda c, p, v: parse_ranks(v),
    help="Ranks FIRST-LAST to take negatives from.",
)
@click.option("--margin", type=float, default=0.0, show_default=True, help="Skip candidates scored >= positive - M.")
@click.option("--per-pair", type=click.IntRange(min=1), default=10, show_default=True, help="Most negatives per pair.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@home_option
@quiet_option
def mine(name, data, out, split, ranks, margin, per_pair, overwrite, home, quiet) -> None:
    """Mine hard negatives for the pairs of --data from index NAME.

    Build NAME with the base encoder of the training run. Writes one JSON line {anchor, positive, negatives}
    per pair: what 'train text --negatives' reads.
    """
    from embedsearch.mining import mine_hard_negatives

    settings = {"split": split, "ranks": ranks, "margin": margin, "per_pair": per_pair}
    report = mine_hard_negatives(name, data, out, home=home, overwrite=overwrite, progress=not quiet, **settings)
    click.echo(
        f"wrote {report.pairs} pairs with {report.negatives} negatives to {report.out} "
        f"({report.without_negatives} pairs without any; skipped {report.skipped_positives} known positives "
        f"and {report.skipped_by_margin} candidates within the margin)"
    )


def parse_ranks(value: str) -> tuple[int, int]:
    """``"10-50"`` -> ``(10, 50)``; anything else is a usage error."""
    first, sep, last = value.partition("-")
    if sep and first.strip().isdigit() and last.strip().isdigit() and 1 <= int(first) <= int(last):
        return int(first), int(last)
    raise click.BadParameter(f"expected FIRST-LAST with 1 <= FIRST <= LAST, got {value!r}")
