"""The settings of a text training run and what it hands back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedsearch.errors import InvalidInputError

SELF_SUPERVISED = ("crop", "dropout")
# settings that change neither the weights nor the model chosen: a resumed run may differ in these
RUN_ONLY_SETTINGS = ("out", "overwrite", "resume", "quiet", "save_every")


class RunSettings:
    """What the training card records of a run's config, and what a resumed run must share with it."""

    def settings(self) -> dict[str, Any]:
        """Every field as JSON-friendly values (paths as strings), for the training card."""
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        return {k: v for k, v in self.settings().items() if k not in RUN_ONLY_SETTINGS}


@dataclass(frozen=True)
class TextTrainConfig(RunSettings):
    """Every setting of ``train_text``; the CLI's options map one to one onto these fields.

    ``data`` is a pairs JSONL file, a BEIR folder (pairs from ``qrels/<split>.tsv``), or, with
    ``self_supervised`` (``"crop"`` or ``"dropout"``), any corpus :func:`embedsearch.data.read_documents` reads
    (a BEIR folder means its ``corpus.jsonl``). ``batch_size`` is the global batch (all processes together);
    ``cache_chunk`` turns on GradCache with chunks of that many texts. ``max_steps`` overrides ``epochs``.
    ``max_length`` truncates texts while training (cheaper steps); the saved model keeps the base's length.
    """

    data: Path
    out: Path
    base: str = "minilm"
    negatives: Path | None = None
    self_supervised: str | None = None
    split: str = "train"
    dev: Path | None = None
    dev_split: str = "dev"
    dev_fraction: float = 0.1
    dev_corpus_size: int = 2000
    batch_size: int = 32
    hard_negatives: int = 1
    cache_chunk: int | None = None
    temperature: float = 0.05
    lr: float = 2e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    epochs: int = 1
    max_steps: int | None = None
    max_length: int | None = None
    crop_ratio: tuple[float, float] = (0.1, 0.5)
    eval_every: int = 100
    save_every: int = 100
    seed: int = 42
    limit: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("negatives", "dev"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "crop_ratio", tuple(self.crop_ratio))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first setting out of range."""
        for problem in _problems(self):
            raise InvalidInputError(problem)


def _problems(config: TextTrainConfig) -> list[str]:
    low, high = config.crop_ratio
    checks = [
        (config.batch_size >= 2, f"batch size must be at least 2 (in-batch negatives), got {config.batch_size}"),
        (
            config.temperature > 0 and math.isfinite(config.temperature),
            f"temperature must be > 0, got {config.temperature}",
        ),
        (config.lr > 0, f"learning rate must be > 0, got {config.lr}"),
        (0 <= config.warmup < 1, f"warmup is a fraction of the steps in [0, 1), got {config.warmup}"),
        (0 <= config.dev_fraction < 1, f"dev fraction must be in [0, 1), got {config.dev_fraction}"),
        (config.dev_corpus_size >= 1, f"dev corpus size must be at least 1, got {config.dev_corpus_size}"),
        (config.hard_negatives >= 0, f"hard negatives per pair must be >= 0, got {config.hard_negatives}"),
        (config.cache_chunk is None or config.cache_chunk >= 1, f"cache chunk must be >= 1, got {config.cache_chunk}"),
        (config.epochs >= 1, f"epochs must be at least 1, got {config.epochs}"),
        (config.max_steps is None or config.max_steps >= 1, f"max steps must be at least 1, got {config.max_steps}"),
        (config.eval_every >= 1 and config.save_every >= 1, "eval-every and save-every must be at least 1"),
        (config.limit is None or config.limit >= 1, f"limit must be at least 1, got {config.limit}"),
        (
            config.max_length is None or config.max_length >= 8,
            f"max length must be at least 8, got {config.max_length}",
        ),
        (0 < low <= high <= 1, f"crop ratio must satisfy 0 < low <= high <= 1, got {config.crop_ratio}"),
        (config.self_supervised in (None, *SELF_SUPERVISED), _mode_problem(config.self_supervised)),
        (not (config.self_supervised and config.negatives), "--negatives does not apply to self-supervised training"),
        ("test" not in (config.split, config.dev_split), _test_split_problem()),
    ]
    return [message for ok, message in checks if not ok]


def _mode_problem(mode: str | None) -> str:
    return f"unknown self-supervised mode {mode!r}; choose one of {', '.join(SELF_SUPERVISED)}"


def _test_split_problem() -> str:
    return "the 'test' qrels are for the final evaluation only; train and select models on another split"


@dataclass
class TrainResult:
    """What a finished run produced: the model directory ``out`` (the best checkpoint by the validation metric,
    dev nDCG@10 for text and mean Recall@k for images, or the last step without a validation set), the numbers
    of its training card, and how many training images were skipped as unreadable."""

    out: Path
    steps: int
    best_step: int
    best_metrics: dict[str, float]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    samples_per_second: float = 0.0
    card: dict[str, Any] = field(default_factory=dict)
    skipped_images: int = 0
