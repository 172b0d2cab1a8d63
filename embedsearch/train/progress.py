"""What every training loop of this package shares: the loop itself (:class:`TrainingLoop`), the per-step report,
the plain-value part of a run's state, learning-rate schedules, and the check that a checkpoint belongs to the
run that resumes it."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from embedsearch.errors import TrainingError


@dataclass(frozen=True)
class StepReport:
    """Handed to ``on_step`` after each step: ``step`` steps are done of ``total_steps``."""

    step: int
    total_steps: int
    loss: float
    lr: float
    samples_per_second: float
    evaluation: dict[str, float] | None = None


@dataclass
class Progress:
    """The part of a run's state that is not tensors (checkpointed as plain values)."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0
    best_score: float = -math.inf
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    wall_seconds: float = 0.0
    samples: int = 0


def linear_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over ``warmup * total_steps`` steps, then linear decay to
    0 at ``total_steps`` (the schedule of ``transformers.get_linear_schedule_with_warmup``)."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return step / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def cosine_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over ``warmup * total_steps`` steps (from ``1 / warm``, so
    the first step already learns), then half a cosine down to 0 at ``total_steps`` (open_clip's
    ``cosine_lr``)."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor


def check_same_run(state: dict[str, Any], identity: dict[str, Any], fingerprint: str, world: int) -> None:
    """A checkpoint may only continue the run that wrote it: same settings (``identity``), data and number of
    processes. Raises :class:`TrainingError` naming what changed."""
    before = state["identity"]
    changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} -> {identity.get(k)!r}" for k in changed)
        raise TrainingError(f"the checkpoint was written with other settings ({shown}); resume with the same ones")
    if state["data"] != fingerprint:
        raise TrainingError("the training data changed since the checkpoint was written; resume with the same files")
    if state["world"] != world:
        raise TrainingError(f"the checkpoint was written by {state['world']} process(es); resume with as many")


class TrainingLoop:
    """The step / evaluate / checkpoint loop of a run, shared by the text and the image trainers.

    A subclass sets ``config`` (with ``resume``, ``eval_every``, ``save_every``), ``progress``
    (:class:`Progress`), ``plan.total_steps``, ``quiet`` and ``on_step``, and implements ``_begin`` (load or
    restore), ``_step`` (one step -> :class:`StepReport`), ``_evaluate``, ``_save`` and ``_finish``.
    """

    def _train(self) -> Any:
        self.session_start = time.perf_counter()
        self._begin()
        self.earlier_sessions = self.progress.wall_seconds  # of the interrupted run, when resuming
        total = self.plan.total_steps
        with tqdm(
            total=total, initial=self.progress.step, disable=self.quiet, unit="step", desc="training", file=sys.stderr
        ) as self.bar:
            if not self.config.resume:
                self._evaluate()
            while self.progress.step < total:
                report = self._step()
                if self.progress.step % self.config.eval_every == 0 or self.progress.step == total:
                    report = StepReport(**{**asdict(report), "evaluation": self._evaluate()})
                if self.progress.step % self.config.save_every == 0 and self.progress.step < total:
                    self._save()
                if self.on_step:
                    self.on_step(report)
        return self._finish()

    def _wall(self) -> float:
        """Seconds of training so far (evaluations and checkpoints included, loading excluded), over sessions."""
        return self.earlier_sessions + time.perf_counter() - self.session_start
