"""The training loop that image-encoder runs share (CLIP / SigLIP in :mod:`embedsearch.train.clip_trainer`,
SimCLR in :mod:`embedsearch.train.simclr`); a subclass says what a step's loss is, how to validate, and what
to write.

One run: fail fast on bad settings and data, decode the images, build the model, then for each step take the
global batch of the plan, compute this process's share of the loss (the loss gathers features across
processes), backpropagate, average gradients over processes, clip them and step AdamW (no weight decay on
gains, biases and the temperature; warm-up, then cosine); validate every ``eval_every`` steps keeping the best
weights by ``mean_recall``; checkpoint every ``save_every`` steps; at the end write the best model.

Randomness is a function of the seed and the step alone (augmentation per sample, see
:mod:`embedsearch.train.augment`; dropout reseeded at each step), so a resumed run needs no RNG state and
continues exactly. BatchNorm (in the ResNet towers) normalises over each process's share of the batch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedsearch.errors import InvalidInputError, TrainingError
from embedsearch.runtime import batch_threads, use_threads
from embedsearch.train.augment import TrainAugment, sample_seeds
from embedsearch.train.card import CURVES, card_header, plot_curves, write_card
from embedsearch.train.checkpoint import Workspace
from embedsearch.train.clip_config import ImageTrainConfig
from embedsearch.train.config import TrainResult
from embedsearch.train.distributed import (
    Cluster,
    average_gradients,
    barrier,
    broadcast_parameters,
    mean_over_processes,
)
from embedsearch.train.progress import Progress, StepReport, TrainingLoop, check_same_run, cosine_schedule

BEST_METRIC = "mean_recall"
NO_DECAY_NAMES = ("bn", "ln", "bias", "logit_scale", "logit_bias", "norm")


class ImageRun(TrainingLoop):
    """The state of one run. Subclasses set, in :meth:`_prepare`: ``self.built`` (a
    :class:`~embedsearch.train.clip_model.BuiltModel`), ``self.plan`` (an
    :class:`~embedsearch.train.image_sampler.EpochPlan`), ``self.fingerprint`` and ``self.has_val``; and
    implement :meth:`_loss`, :meth:`_metrics` and :meth:`_describe`."""

    kind = ""
    modalities: tuple[str, ...] = ("image",)
    loss_name = ""
    plotted_metrics: tuple[str, ...] = (BEST_METRIC,)

    def __init__(self, config: ImageTrainConfig, cluster: Cluster, on_step: Callable | None = None) -> None:
        self.config, self.cluster, self.on_step = config, cluster, on_step
        self.workspace = Workspace(config.out)
        self.workspace.check(overwrite=config.overwrite, resume=config.resume)
        if config.batch_size % cluster.world:
            raise InvalidInputError(f"batch size {config.batch_size} does not split over {cluster.world} processes")
        use_threads(max(1, batch_threads() // cluster.local_world))
        self.device = torch.device(cluster.device(config.device))
        self.quiet = config.quiet or not cluster.is_main
        self._prepare()
        self.model = self.built.model.to(self.device)
        self.params = [p for p in self.trainable.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(_param_groups(self.trainable, config.weight_decay), lr=config.lr)
        schedule = cosine_schedule(self.plan.total_steps, config.warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.progress = Progress()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bar: Any = None
        self.session_start, self.earlier_sessions = time.perf_counter(), 0.0

    # --- what a subclass provides -------------------------------------------------------------------------
    def _prepare(self) -> None:
        raise NotImplementedError

    def _loss(self, batch: list, step: int) -> tuple[torch.Tensor, int]:
        """This process's loss of global batch ``batch`` at ``step`` and the global number of samples."""
        raise NotImplementedError

    def _metrics(self) -> dict[str, float]:
        """Validation metrics (called in eval mode without gradients), ``mean_recall`` among them."""
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        """The data part of the training card."""
        raise NotImplementedError

    @property
    def trainable(self) -> nn.Module:
        """Every module the optimizer updates and a checkpoint holds."""
        return self.model

    def skipped_images(self) -> int:
        return 0

    def _train_mode(self) -> None:
        self.trainable.train()

    def _text_tower_source(self) -> Path | None:
        return None

    # --- the loop -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train, then publish; a run that fails before its first checkpoint leaves no work folder behind."""
        try:
            return self._train()
        except BaseException:
            if self.cluster.is_main:
                self.workspace.discard_unless_resumable()
            raise

    def _begin(self) -> None:
        if self.config.resume:
            self._restore(self.workspace.load())
            return
        if self.cluster.is_main:
            self.workspace.start_fresh()
        barrier(self.cluster)
        broadcast_parameters(self.trainable, self.cluster)

    def _step(self) -> StepReport:
        start = time.perf_counter()
        loss, samples = self.backward(self.progress.step)
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {self.progress.step + 1}; lower --lr")
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():  # as open_clip does: a temperature below 0.01 makes the logits overflow
            self.model.logit_scale.clamp_(0, math.log(100))
        return self._record(loss, lr, samples, time.perf_counter() - start)

    def backward(self, step: int) -> tuple[float, int]:
        """Gradients of the loss of global batch ``step`` in ``.grad`` (averaged over processes); returns the
        loss (the mean over processes) and the number of samples in the global batch."""
        self._train_mode()
        torch.manual_seed(sample_seeds(self.config.seed, step, 1, stream=1000 + self.cluster.rank)[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss, samples = self._loss(self.plan.batch(step), step)
        loss.backward()
        average_gradients(self.params, self.cluster)
        return mean_over_processes(loss.item(), self.cluster, self.device), samples

    def train_augment(self) -> TrainAugment:
        """The training transform the config asks for, normalising as the model's preprocessing does."""
        config, preprocess = self.config, self.built.preprocess_cfg
        return TrainAugment(
            self.built.image_size,
            preprocess["mean"],
            preprocess["std"],
            crop_scale=config.crop_scale,
            hflip=config.hflip,
            jitter=config.jitter,
            hue=config.hue,
            grayscale=config.grayscale,
        )

    def local_share(self, batch: list) -> slice:
        """This process's slice of a global batch."""
        per = len(batch) // self.cluster.world
        return slice(self.cluster.rank * per, (self.cluster.rank + 1) * per)

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
        if metrics[BEST_METRIC] > progress.best_score:
            progress.best_score, progress.best_step = metrics[BEST_METRIC], progress.step
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if not self.quiet:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.bar.write(f"step {progress.step}: val {shown}", file=sys.stderr)
        return metrics

    def _save(self) -> None:
        self.progress.wall_seconds = self._wall()
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
                    "best": self.best_weights,
                }
            )
        barrier(self.cluster)

    def _restore(self, state: dict[str, Any]) -> None:
        check_same_run(state, self.config.identity(), self.fingerprint, self.cluster.world)
        self.trainable.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
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
                self.model.load_state_dict(self.best_weights)
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
        )

    def _best_metrics(self) -> dict[str, float]:
        progress = self.progress
        return next((e["metrics"] for e in progress.evaluations if e["step"] == progress.best_step), {})

    def _write(self, folder: Path, card: dict[str, Any]) -> None:
        from embedsearch.encoders.open_clip_model import save_open_clip_directory

        built = self.built
        save_open_clip_directory(
            self.model,
            built.model_cfg,
            built.preprocess_cfg,
            folder,
            modalities=list(self.modalities),
            kind=self.kind,
            text_tower_source=self._text_tower_source(),
        )
        write_card(folder, card)
        plot_curves(
            folder / CURVES,
            self.progress.losses,
            self.progress.evaluations,
            self.plotted_metrics,
            loss_name=self.loss_name,
            split="val",
        )

    def _card(self) -> dict[str, Any]:
        import open_clip

        progress = self.progress
        header = card_header()
        header["versions"]["open_clip"] = open_clip.__version__
        return {
            **header,
            "kind": self.kind,
            "model": {
                "name": self.config.model,
                "model_cfg": self.built.model_cfg,
                "preprocess_cfg": self.built.preprocess_cfg,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "trained_parameters": sum(p.numel() for p in self.params),
            },
            "data": self._describe(),
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

    def too_few(self, count: int, held_out: int, what: str) -> InvalidInputError:
        held = f" (after holding out {held_out} for validation)" if held_out else ""
        return InvalidInputError(
            f"too few training examples for one batch: {count} images{held} do not fill a batch of "
            f"{self.config.batch_size} with distinct {what}; lower --batch-size or add data"
        )


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups as open_clip_train makes them: no weight decay on 1-d tensors (gains, biases) and on the
    temperature and bias of the logits."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        plain = param.ndim < 2 or any(part in name for part in NO_DECAY_NAMES)
        (no_decay if plain else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
