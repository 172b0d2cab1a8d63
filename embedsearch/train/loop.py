"""The one training loop of this package (:class:`TrainingLoop`): the text and image trainers are subclasses that
say, in a few small hooks, what differs between them.

One run: fail fast on bad settings and a taken output, read the data and build the model (``_prepare``), then
for each step take the global batch of the plan, compute the gradients of its loss (``_backward``: this
process's share, averaged over the processes), clip them and step AdamW under the run's learning-rate schedule;
validate every ``eval_every`` steps on the main process, keeping the best weights by ``best_metric``;
checkpoint every ``save_every`` steps; at the end write the best model with its training card.

A checkpoint holds the same state for every trainer: weights, optimizer, schedule, every process's torch RNG
state, the progress so far and the best weights; so a resumed run continues as the interrupted one would
have.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from embedsearch.errors import InvalidInputError, TrainingError
from embedsearch.runtime import batch_threads, use_threads
from embedsearch.train.card import CURVES, card_header, plot_curves, write_card
from embedsearch.train.checkpoint import Workspace, check_same_run
from embedsearch.train.distributed import Cluster, barrier, broadcast_parameters, gather_objects
from embedsearch.train.random_state import rng_state, set_rng_state
from embedsearch.train.settings import RunConfig, TrainResult


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


class TrainingLoop:
    """The step / evaluate / checkpoint loop of one run, on ``cluster``'s share of every global batch.

    A subclass sets, in :meth:`_prepare`: ``self.plan`` (with ``total_steps`` and ``batch(step)``),
    ``self.fingerprint`` (of the inputs, checked on resume) and ``self.has_val``; and implements
    :meth:`_backward`, :meth:`_metrics`, :meth:`_save_model`, :meth:`_describe` and the :attr:`trainable`
    module. The class attributes name the validation metric that picks the best checkpoint, the validation
    set and the loss (for progress lines and the curves).
    """

    best_metric = ""
    split_name = "val"
    loss_name = "loss"
    plotted_metrics: tuple[str, ...] = ()
    divergence_hint = "lower --lr"

    def __init__(
        self, config: RunConfig, cluster: Cluster, on_step: Callable[[StepReport], None] | None = None
    ) -> None:
        self.config, self.cluster, self.on_step = config, cluster, on_step
        self.quiet = config.quiet or not cluster.is_main
        self.workspace = Workspace(config.out)
        self.workspace.check(overwrite=config.overwrite, resume=config.resume)
        if config.batch_size % cluster.world:
            raise InvalidInputError(f"batch size {config.batch_size} does not split over {cluster.world} processes")
        use_threads(max(1, batch_threads() // cluster.local_world))
        self.device = torch.device(cluster.device(config.device))
        self._prepare()
        self.params = [p for p in self.trainable.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = self._schedule(self.plan.total_steps, config.warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.progress = Progress()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bar: Any = None
        self.session_start, self.earlier_sessions = time.perf_counter(), 0.0

    # --- what a subclass provides -------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Read the data and build the model (see the class docstring for what it sets)."""
        raise NotImplementedError

    @property
    def trainable(self) -> nn.Module:
        """Every module the optimizer updates and a checkpoint holds."""
        raise NotImplementedError

    @property
    def published(self) -> nn.Module:
        """The module the output holds, whose best weights are kept (by default :attr:`trainable`)."""
        return self.trainable

    def _param_groups(self) -> list[dict[str, Any]]:
        """AdamW's parameter groups: by default every trained parameter with ``config.weight_decay``."""
        return [{"params": self.params, "weight_decay": self.config.weight_decay}]

    def _schedule(self, total_steps: int, warmup: float) -> Callable[[int], float]:
        """The learning-rate factor per step (see :mod:`embedsearch.train.schedules`)."""
        raise NotImplementedError

    def _backward(self, step: int) -> tuple[float, int]:
        """Put the gradients of the loss of global batch ``step`` in ``.grad`` (averaged over the processes);
        return that loss (the mean over the processes) and the number of samples in the global batch."""
        raise NotImplementedError

    def _after_update(self) -> None:
        """Called after each optimizer step (e.g. to clamp a learnable temperature)."""

    def _train_mode(self) -> None:
        self.trainable.train()

    def _metrics(self) -> dict[str, float]:
        """Validation metrics, ``best_metric`` among them (main process, eval mode, no gradients)."""
        raise NotImplementedError

    def _save_model(self, folder: Path) -> None:
        """Write the model files of the output into ``folder`` (the card and curves are written beside)."""
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        """What the training card says about this run's model and data (its first fields after the header)."""
        raise NotImplementedError

    def _versions(self) -> dict[str, str]:
        """Versions of the libraries the model needs, beyond those of :func:`card_header`."""
        return {}

    def skipped_images(self) -> int:
        return 0

    def skipped_records(self) -> int:
        return 0

    # --- the loop -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train, then publish; a run that fails before its first checkpoint leaves no work folder behind."""
        try:
            return self._train()
        except BaseException:
            if self.cluster.is_main:
                self.workspace.discard_unless_resumable()
            raise

    def _train(self) -> TrainResult:
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

    def _begin(self) -> None:
        if self.config.resume:
            self._restore(self.workspace.load())
            return
        if self.cluster.is_main:
            self.workspace.start_fresh()
        barrier(self.cluster)
        torch.manual_seed(self.config.seed + self.cluster.rank)
        broadcast_parameters(self.trainable, self.cluster)

    def _step(self) -> StepReport:
        start = time.perf_counter()
        loss, samples = self.backward(self.progress.step)
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {self.progress.step + 1}; {self.divergence_hint}")
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self._after_update()
        return self._record(loss, lr, samples, time.perf_counter() - start)

    def backward(self, step: int) -> tuple[float, int]:
        """Fresh gradients of global batch ``step`` in ``.grad``: see :meth:`_backward`."""
        self.optimizer.zero_grad(set_to_none=True)
        return self._backward(step)

    def _record(self, loss: float, lr: float, samples: int, seconds: float) -> StepReport:
        progress = self.progress
        progress.step += 1
        progress.losses.append(loss)
        progress.train_seconds += seconds
        progress.samples += samples
        speed = progress.samples / max(progress.train_seconds, 1e-9)
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{speed:.1f}", refresh=False)
        self.bar.update(1)
        return StepReport(progress.step, self.plan.total_steps, loss, lr, speed)

    def _evaluate(self) -> dict[str, float] | None:
        """Validate (main process; the others wait); keep the weights if they are the best."""
        if not self.has_val:
            return None
        metrics = self._evaluate_main() if self.cluster.is_main else None
        barrier(self.cluster)
        return metrics

    def _evaluate_main(self) -> dict[str, float]:
        start = time.perf_counter()
        self.trainable.eval()
        try:
            with torch.inference_mode():
                metrics = self._metrics()
        finally:
            self._train_mode()
        seconds = time.perf_counter() - start
        progress = self.progress
        progress.eval_seconds += seconds
        progress.evaluations.append({"step": progress.step, "metrics": metrics, "seconds": round(seconds, 3)})
        if metrics[self.best_metric] > progress.best_score:
            progress.best_score, progress.best_step = metrics[self.best_metric], progress.step
            self.best_weights = {k: v.detach().clone() for k, v in self.published.state_dict().items()}
        if not self.quiet:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.bar.write(f"step {progress.step}: {self.split_name} {shown}", file=sys.stderr)
        return metrics

    def _save(self) -> None:
        self.progress.wall_seconds = self._wall()
        rng_states = gather_objects(rng_state(), self.cluster)
        if self.cluster.is_main:
            self.workspace.save(
                {
                    "identity": self.config.identity(),
                    "data": self.fingerprint,
                    "world": self.cluster.world,
                    "progress": asdict(self.progress),
                    "model": self.trainable.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rng_states,
                    "best": self.best_weights,
                }
            )
        barrier(self.cluster)

    def _restore(self, state: dict[str, Any]) -> None:
        check_same_run(state, self.config.identity(), self.fingerprint, self.cluster.world)
        self.trainable.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("rng"):  # image checkpoints from before the shared loop have none (their steps reseed)
            set_rng_state(state["rng"][self.cluster.rank])
        self.progress = Progress(**state["progress"])
        self.best_weights = state["best"]

    def _finish(self) -> TrainResult:
        progress = self.progress
        progress.wall_seconds = self._wall()
        if not self.has_val:
            progress.best_step = progress.step
        card = self._card() if self.cluster.is_main else {}
        if self.cluster.is_main:
            if self.best_weights is not None and progress.best_step != progress.step:
                self.published.load_state_dict(self.best_weights)
            self.workspace.publish(lambda folder: self._write(folder, card))
        barrier(self.cluster)
        return TrainResult(
            out=self.config.out,
            steps=progress.step,
            best_step=progress.best_step,
            best_metrics=self._best_metrics(),
            evaluations=progress.evaluations,
            wall_seconds=progress.wall_seconds,
            samples_per_second=progress.samples / max(progress.train_seconds, 1e-9),
            card=card,
            skipped_images=self.skipped_images(),
            skipped_records=self.skipped_records(),
        )

    def _best_metrics(self) -> dict[str, float]:
        progress = self.progress
        return next((e["metrics"] for e in progress.evaluations if e["step"] == progress.best_step), {})

    def _write(self, folder: Path, card: dict[str, Any]) -> None:
        self._save_model(folder)
        write_card(folder, card)
        losses, evaluations = self.progress.losses, self.progress.evaluations
        plot_curves(
            folder / CURVES, losses, evaluations, self.plotted_metrics, loss_name=self.loss_name, split=self.split_name
        )

    def _card(self) -> dict[str, Any]:
        progress = self.progress
        header = card_header()
        header["versions"].update(self._versions())
        return {
            **header,
            **self._describe(),
            "settings": self.config.settings(),
            "world_size": self.cluster.world,
            "steps": progress.step,
            "best": {"step": progress.best_step, "metrics": self._best_metrics()},
            "evaluations": progress.evaluations,
            "wall_seconds": round(progress.wall_seconds, 3),
            "train_seconds": round(progress.train_seconds, 3),
            "eval_seconds": round(progress.eval_seconds, 3),
            "samples": progress.samples,
            "samples_per_second": round(progress.samples / max(progress.train_seconds, 1e-9), 3),
            "losses": progress.losses,
        }

    def _wall(self) -> float:
        """Seconds of training so far (evaluations and checkpoints included, loading excluded), over sessions."""
        return self.earlier_sessions + time.perf_counter() - self.session_start


def too_few_examples(count: str, held_out: int, split: str, batch_size: int, distinct: str) -> InvalidInputError:
    """The error for data that do not fill one batch: ``count`` training examples (``"87 images"``) left after
    holding out ``held_out`` for the ``split`` set, a batch of ``batch_size`` with ``distinct`` ones."""
    held = f" (after holding out {held_out} for {split})" if held_out else ""
    return InvalidInputError(
        f"too few training examples for one batch: {count}{held} do not fill a batch of {batch_size} with "
        f"distinct {distinct}; lower --batch-size or add data"
    )
