"""The settings of a text training run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.train.settings import RunConfig

SELF_SUPERVISED = ("crop", "dropout")
# Defaults chosen on a dev split of SciFact's train queries (benchmarks/bench_train_text.py): a short run at a
# high learning rate with the best dev checkpoint kept. At 1e-4 the crop pairs pulled dev nDCG@10 below the base
# model's, so self-supervised runs take 2e-5. 60 steps of batch 32 at 128 tokens: 7-9 minutes on 2 cores.
SUPERVISED_LR = 1e-4
SELF_SUPERVISED_LR = 2e-5
DEFAULT_STEPS = 60


@dataclass(frozen=True)
class TextTrainConfig(RunConfig):
    """Every setting of ``train_text`` (see :class:`~embedsearch.train.settings.RunConfig` for the ones every
    trainer has); the CLI's options map one to one onto these fields.

    ``data`` is a pairs JSONL file, a BEIR folder (pairs from ``qrels/<split>.tsv``), or, with
    ``self_supervised`` (``"crop"`` or ``"dropout"``), any corpus :func:`embedsearch.data.read_documents` reads
    (a BEIR folder means its ``corpus.jsonl``). ``skip_invalid`` leaves out malformed records of every input
    (pairs lines, corpus records) instead of rejecting the input; each is logged as ``skipped file:line:
    reason``. ``cache_chunk`` turns on GradCache with chunks of that many texts. ``max_length`` truncates texts
    while training (cheaper steps); the saved model keeps the base's length.

    Unset, ``lr`` is :data:`SUPERVISED_LR` (:data:`SELF_SUPERVISED_LR` with ``self_supervised``), and without
    ``epochs`` or ``max_steps`` a run is :data:`DEFAULT_STEPS` steps.
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
    dev_corpus_size: int = 1000
    hard_negatives: int = 1
    cache_chunk: int | None = None
    temperature: float = 0.05
    max_length: int | None = 128
    crop_ratio: tuple[float, float] = (0.1, 0.5)
    skip_invalid: bool = False
    lr: float | None = field(default=None, kw_only=True)
    epochs: int | None = field(default=None, kw_only=True)
    eval_every: int = field(default=20, kw_only=True)

    def __post_init__(self) -> None:
        if self.lr is None:
            object.__setattr__(self, "lr", SELF_SUPERVISED_LR if self.self_supervised else SUPERVISED_LR)
        if self.epochs is None:
            object.__setattr__(self, "epochs", 1)
            if self.max_steps is None:
                object.__setattr__(self, "max_steps", DEFAULT_STEPS)
        super().__post_init__()

    def _path_fields(self) -> tuple[str, ...]:
        return ("data", "out", "negatives", "dev")

    def _tuple_fields(self) -> tuple[str, ...]:
        return ("crop_ratio",)

    def _problems(self) -> list[str]:
        low, high = self.crop_ratio
        checks = [
            (
                self.temperature > 0 and math.isfinite(self.temperature),
                f"temperature must be > 0, got {self.temperature}",
            ),
            (0 <= self.dev_fraction < 1, f"dev fraction must be in [0, 1), got {self.dev_fraction}"),
            (self.dev_corpus_size >= 1, f"dev corpus size must be at least 1, got {self.dev_corpus_size}"),
            (self.hard_negatives >= 0, f"hard negatives per pair must be >= 0, got {self.hard_negatives}"),
            (self.cache_chunk is None or self.cache_chunk >= 1, f"cache chunk must be >= 1, got {self.cache_chunk}"),
            (self.max_length is None or self.max_length >= 8, f"max length must be at least 8, got {self.max_length}"),
            (0 < low <= high <= 1, f"crop ratio must satisfy 0 < low <= high <= 1, got {self.crop_ratio}"),
            (self.self_supervised in (None, *SELF_SUPERVISED), _mode_problem(self.self_supervised)),
            (not (self.self_supervised and self.negatives), "--negatives does not apply to self-supervised training"),
            ("test" not in (self.split, self.dev_split), _test_split_problem()),
        ]
        return super()._problems() + [message for ok, message in checks if not ok]


def _mode_problem(mode: str | None) -> str:
    return f"unknown self-supervised mode {mode!r}; choose one of {', '.join(SELF_SUPERVISED)}"


def _test_split_problem() -> str:
    return "the 'test' qrels are for the final evaluation only; train and select models on another split"
