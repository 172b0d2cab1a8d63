"""``embedsearch train text|clip|simclr``: thin clients of :mod:`embedsearch.train` (options map one to one onto
the fields of the run's config)."""

from __future__ import annotations

import dataclasses

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import quiet_option
from embedsearch.train.image.clip.config import DEFAULT_MIXUP, ClipTrainConfig
from embedsearch.train.image.simclr.config import SimclrTrainConfig

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
@click.option("--dev-corpus-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Global batch.")
@click.option("--hard-negatives", type=click.IntRange(min=0), default=1, show_default=True, help="Per pair.")
@click.option("--cache-chunk", type=click.IntRange(min=1), help="GradCache: embed the batch N texts at a time.")
@click.option("--temperature", type=positive_float, default=0.05, show_default=True)
@click.option("--lr", type=positive_float, help="Peak learning rate (AdamW).  [default: 1e-4; 2e-5 self-supervised]")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the data.  [default: 60 steps]")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N steps (overrides --epochs).")
@click.option(
    "--max-length", type=click.IntRange(min=8), default=128, show_default=True, help="Tokens per text while training."
)
@click.option("--eval-every", type=click.IntRange(min=1), default=20, show_default=True, help="Dev eval every N steps.")
@click.option("--save-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N training pairs.")
@click.option(
    "--skip-invalid", is_flag=True, help="Skip malformed records (each is reported) instead of rejecting the input."
)
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
    skips = f"; skipped {result.skipped_records} invalid record(s)" if result.skipped_records else ""
    click.echo(
        f"trained {result.steps} steps in {result.wall_seconds:.1f}s ({result.samples_per_second:.1f} samples/s); "
        f"{best}{base}{skips}; model written to {result.out}"
    )


def _defaults(config_class: type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config_class)}


def _field_option(config_class: type, name: str, **kwargs):
    """``--name`` for config field ``name``, its default taken from the dataclass (the one place it is set)."""
    default = _defaults(config_class)[name]
    return click.option(f"--{name.replace('_', '-')}", default=default, show_default=True, **kwargs)


def _image_options(config_class: type):
    """The options ``train clip`` and ``train simclr`` share, each mapping onto the config field of its name."""

    def field(name: str, **kwargs):
        return _field_option(config_class, name, **kwargs)

    options = [
        click.option("--out", type=click.Path(), required=True, help="Model directory to write (written at the end)."),
        field(
            "model", help="Image tower: es-resnet-32, es-resnet-64, es-vit-64, or an open_clip config (ViT-B-32, ...)."
        ),
        click.option("--image-size", type=click.IntRange(min=16), help="Training resolution [default: the model's]."),
        field("batch_size", type=click.IntRange(min=2), help="Global batch."),
        field("epochs", type=click.IntRange(min=1)),
        click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N steps (overrides --epochs)."),
        field("lr", type=positive_float, help="Peak learning rate (AdamW)."),
        field("weight_decay", type=click.FloatRange(min=0)),
        field("warmup", type=fraction, help="Fraction of the steps; then a cosine decay."),
        field("max_grad_norm", type=positive_float),
        field("crop_scale", type=(float, float), help="Area range of the random resized crop."),
        click.option(
            "--hflip/--no-hflip",
            default=_defaults(config_class)["hflip"],
            show_default=True,
            help="Random horizontal flips (they change what text and arrows mean).",
        ),
        field("jitter", type=click.FloatRange(min=0), help="Brightness, contrast and saturation jitter."),
        field("hue", type=click.FloatRange(0, 0.5), help="Hue jitter."),
        field("grayscale", type=click.FloatRange(0, 1), help="Probability of a greyscale image."),
        field("val_fraction", type=fraction),
        field("eval_every", type=click.IntRange(min=1)),
        field("save_every", type=click.IntRange(min=1)),
        field("seed", type=int),
        click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images."),
        field("device", help="torch device, e.g. cuda."),
        click.option("--overwrite", is_flag=True, help="Replace an existing --out (or an interrupted run)."),
        click.option("--resume", is_flag=True, help="Continue the interrupted run that writes --out."),
        quiet_option,
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


fraction = click.FloatRange(0, 1, max_open=True)


def _clip_option(name: str, **kwargs):
    return _field_option(ClipTrainConfig, name, **kwargs)


@train.command("clip")
@click.option("--pairs", type=click.Path(dir_okay=False), required=True, help='JSONL of {"image": ..., "text": ...}.')
@click.option("--images-root", type=click.Path(file_okay=False), help="Base of relative image paths.")
@click.option("--split", help='Use only the pairs whose "split" field has this value.')
@click.option("--val", type=click.Path(dir_okay=False), help="Validation pairs [default: a split of --pairs].")
@_clip_option("text_tower", help="minilm, open_clip, or a Hugging Face model folder.")
@click.option("--lock-text/--unlock-text", default=None, help="Freeze the text tower [default: if pretrained].")
@_clip_option("unlocked_layers", type=click.IntRange(min=0), help="LiT: train the text tower's last N layers.")
@_clip_option("loss", type=click.Choice(["clip", "siglip"]))
@click.option("--temperature", type=positive_float, help="Initial temperature [default: 0.07 clip, 0.1 siglip].")
@_clip_option("context_length", type=click.IntRange(min=8), help="Tokens per caption.")
@click.option(
    "--mixup",
    type=click.FloatRange(min=0),
    help=f"Mixup's Beta strength; 0: off (CLIP loss only) [default: {DEFAULT_MIXUP} clip, 0 siglip].",
)
@_clip_option(
    "negatives",
    type=click.Choice(["auto", "batch", "all"]),
    help="Image->text negatives: the batch's captions, or all training captions (locked text tower); auto: all "
    "where it applies.",
)
@_image_options(ClipTrainConfig)
def clip(**options) -> None:
    """Train an image-text encoder (CLIP or SigLIP loss) on image-caption pairs."""
    from embedsearch.train import train_clip

    _echo_summary(train_clip(ClipTrainConfig(**options)))


@train.command("simclr")
@click.option("--images", type=click.Path(file_okay=False), required=True, help="Folder of images (recursive).")
@_field_option(SimclrTrainConfig, "temperature", type=positive_float, help="NT-Xent temperature (fixed).")
@_field_option(SimclrTrainConfig, "projection_dim", type=click.IntRange(min=1), help="Output of the loss's head.")
@_image_options(SimclrTrainConfig)
def simclr(**options) -> None:
    """Train an image encoder self-supervised (SimCLR) on an image folder, for image search."""
    from embedsearch.train import train_simclr

    _echo_summary(train_simclr(SimclrTrainConfig(**options)))


def _echo_summary(result) -> None:
    best = (
        f"best val mean recall {result.best_metrics['mean_recall']:.4f} at step {result.best_step} "
        f"({', '.join(f'{k} {v:.3f}' for k, v in result.best_metrics.items() if k.endswith('R@1'))})"
        if result.best_metrics
        else "no validation set"
    )
    click.echo(
        f"trained {result.steps} steps in {result.wall_seconds:.1f}s ({result.samples_per_second:.1f} samples/s); "
        f"{best}; skipped {result.skipped_images} unreadable image(s); model written to {result.out}"
    )
