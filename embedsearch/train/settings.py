"""What every run's settings share: the run fields (output, optimisation, schedule of evaluations and
checkpoints, seed, device) with their checks, the training card's record of them, the part a resumed run must
keep; and what a run hands back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedsearch.errors import InvalidInputError

# settings that change neither the weights nor the model chosen: a resumed run may differ in these. (With the
# same input files, which a resume checks, ``skip_invalid`` cannot change what is read: without it a file with
# bad records fails to read at all.)
RUN_ONLY_SETTINGS = ("out", "overwrite", "resume", "quiet", "save_every", "skip_invalid")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The fields every trainer's config has (each trainer's config adds its own, and ``out``, the model
    directory to write). ``batch_size`` is the global batch (all processes together); ``max_steps`` overrides
    ``epochs``; ``warmup`` is a fraction of the steps; ``limit`` keeps only the first N training examples.

    Subclasses name their path fields in :meth:`_path_fields` and tuple fields in :meth:`_tuple_fields`
    (converted on construction) and add checks in :meth:`_problems`. Raises :class:`InvalidInputError` naming
    the first setting out of range.
    """

    batch_size: int = 32
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 2e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    seed: int = 42
    limit: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in self._path_fields():
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        for name in self._tuple_fields():
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first setting out of range."""
        for problem in self._problems():
            raise InvalidInputError(problem)

    def _path_fields(self) -> tuple[str, ...]:
        return ("out",)

    def _tuple_fields(self) -> tuple[str, ...]:
        return ()

    def _problems(self) -> list[str]:
        checks = [
            (self.batch_size >= 2, f"batch size must be at least 2 (in-batch negatives), got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.warmup < 1, f"warmup is a fraction of the steps in [0, 1), got {self.warmup}"),
            (self.max_grad_norm > 0, f"max grad norm must be > 0, got {self.max_grad_norm}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max steps must be at least 1, got {self.max_steps}"),
            (self.eval_every >= 1 and self.save_every >= 1, "eval-every and save-every must be at least 1"),
            (self.limit is None or self.limit >= 1, f"limit must be at least 1, got {self.limit}"),
        ]
        return [message for ok, message in checks if not ok]

    def settings(self) -> dict[str, Any]:
        """Every field as JSON-friendly values (paths as strings), for the training card."""
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        return {k: v for k, v in self.settings().items() if k not in RUN_ONLY_SETTINGS}


@dataclass
class TrainResult:
    """What a finished run produced: the model directory ``out`` (the best checkpoint by the validation metric,
    dev nDCG@10 for text and mean Recall@k for images, or the last step without a validation set), the numbers
    of its training card, how many training images were skipped as unreadable and how many input records as
    invalid (``skip_invalid``)."""

    out: Path
    steps: int
    best_step: int
    best_metrics: dict[str, float]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    samples_per_second: float = 0.0
    card: dict[str, Any] = field(default_factory=dict)
    skipped_images: int = 0
    skipped_records: int = 0
