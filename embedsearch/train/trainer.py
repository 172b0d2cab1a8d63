"""``train_text``: the contrastive training loop for text encoders.

One run: read the data and dev set, load the base model, then for each step build the global batch, take a
(plain or GradCache) step of symmetric InfoNCE, evaluate on the dev set every ``eval_every`` steps (keeping
the best weights by nDCG@10), checkpoint every ``save_every`` steps, and finally write the best model with its
training card. Under ``torchrun`` every process runs this same loop on its share of each global batch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from embedsearch.errors import InvalidInputError, TrainingError
from embedsearch.runtime import batch_threads, use_threads
from embedsearch.train.batches import build_step_batch
from embedsearch.train.card import CURVES, card_header, plot_curves, write_card
from embedsearch.train.checkpoint import Workspace
from embedsearch.train.config import TextTrainConfig, TrainResult
from embedsearch.train.dataset import TrainingData, load_training_data
from embedsearch.train.devset import evaluate_dev
from embedsearch.train.distributed import (
    Cluster,
    barrier,
    broadcast_parameters,
    gather_objects,
    init_from_env,
    shutdown,
)
from embedsearch.train.gradcache import contrastive_step, rng_state, set_rng_state
from embedsearch.train.losses import InfoNCELoss
from embedsearch.train.model import TextModel
from embedsearch.train.pairs import positives_by_anchor
from embedsearch.train.progress import Progress, StepReport, TrainingLoop, check_same_run, linear_schedule
from embedsearch.train.sampler import BatchPlan


def train_text(config: TextTrainConfig, on_step: Callable[[StepReport], None] | None = None) -> TrainResult:
    """Train a text encoder contrastively as ``config`` says and write it to ``config.out``.

    ``config.out`` ends up holding a sentence-transformers model (the best by dev nDCG@10, or the last step
    without a dev set), ``training_card.json`` and ``training_curves.png``; nothing is written there before
    the end. Raises :class:`SourceError` / :class:`InvalidInputError` for bad data or settings (too few pairs
    for one batch included), :class:`UnknownEncoderError` for a base model that cannot be loaded,
    :class:`OutputExistsError` for an existing output without ``overwrite``, :class:`TrainingError` for a
    diverging loss or a checkpoint of other settings or data.
    """
    cluster = init_from_env(config.device)
    try:
        return _Run(config, cluster, on_step).run()
    finally:
        shutdown(cluster)


class _Run(TrainingLoop):
    """The state of one training run; see :func:`train_text`."""

    def __init__(self, config: TextTrainConfig, cluster: Cluster, on_step) -> None:
        self.config, self.cluster, self.on_step = config, cluster, on_step
        self.quiet = config.quiet or not cluster.is_main
        self.workspace = Workspace(config.out)
        self.workspace.check(overwrite=config.overwrite, resume=config.resume)
        use_threads(max(1, batch_threads() // cluster.local_world))
        self.data = load_training_data(config)
        self.plan = _batch_plan(config, self.data, cluster)
        self.model = TextModel(config.base, cluster.device(config.device), config.max_length)
        self.params = self.model.parameters()
        self.related = positives_by_anchor(self.data.pairs)
        self.per_pair = config.hard_negatives if any(p.negatives for p in self.data.pairs) else 0
        self.loss_fn = InfoNCELoss(config.temperature)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        schedule = linear_schedule(self.plan.total_steps, config.warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.progress = Progress()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bar: Any = None
        self.session_start, self.earlier_sessions = time.perf_counter(), 0.0

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
        torch.manual_seed(self.config.seed + self.cluster.rank)
        broadcast_parameters(self.model.st, self.cluster)

    def _step(self) -> StepReport:
        step = self.progress.step
        pairs = [self.data.pairs[i] for i in self.plan.batch(step)]
        batch = build_step_batch(
            pairs,
            mode=self.config.self_supervised,
            per_pair=self.per_pair,
            related=self.related,
            rng=np.random.default_rng([self.config.seed, step, 7]),
            cluster=self.cluster,
            crop_ratio=self.config.crop_ratio,
        )
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = contrastive_step(
            self.model.embed, batch, self.loss_fn, self.params, self.cluster, self.config.cache_chunk
        )
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {step + 1}; lower --lr or raise --temperature")
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        return self._record(loss, lr, len(pairs), time.perf_counter() - start)

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
        """Evaluate on the dev set (main process; the others wait); keep the weights if they are the best."""
        if self.data.dev is None:
            return None
        metrics = self._evaluate_main() if self.cluster.is_main else None
        barrier(self.cluster)
        return metrics

    def _evaluate_main(self) -> dict[str, float]:
        start = time.perf_counter()
        metrics = evaluate_dev(self.model.encode, self.data.dev)
        seconds = time.perf_counter() - start
        progress = self.progress
        progress.eval_seconds += seconds
        progress.evaluations.append({"step": progress.step, "metrics": metrics, "seconds": round(seconds, 3)})
        if metrics["ndcg@10"] > progress.best_score:
            progress.best_score, progress.best_step = metrics["ndcg@10"], progress.step
            self.best_weights = {k: v.detach().clone() for k, v in self.model.st.state_dict().items()}
        if not self.config.quiet:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.bar.write(f"step {progress.step}: dev {shown}", file=sys.stderr)
        return metrics

    def _save(self) -> None:
        self.progress.wall_seconds = self._wall()
        rng_states = gather_objects(rng_state(), self.cluster)
        if self.cluster.is_main:
            self.workspace.save(
                {
                    "identity": self.config.identity(),
                    "data": self.data.fingerprint,
                    "world": self.cluster.world,
                    "progress": asdict(self.progress),
                    "model": self.model.st.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rng_states,
                    "best": self.best_weights,
                }
            )
        barrier(self.cluster)

    def _restore(self, state: dict[str, Any]) -> None:
        check_same_run(state, self.config.identity(), self.data.fingerprint, self.cluster.world)
        self.model.st.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][self.cluster.rank])
        self.progress = Progress(**state["progress"])
        self.best_weights = state["best"]

    def _finish(self) -> TrainResult:
        progress = self.progress
        progress.wall_seconds = self._wall()
        if self.data.dev is None:
            progress.best_step = progress.step
        card = self._card() if self.cluster.is_main else {}
        if self.cluster.is_main:
            if self.best_weights is not None and progress.best_step != progress.step:
                self.model.st.load_state_dict(self.best_weights)
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
        )

    def _best_metrics(self) -> dict[str, float]:
        progress = self.progress
        return next((e["metrics"] for e in progress.evaluations if e["step"] == progress.best_step), {})

    def _write(self, folder, card: dict[str, Any]) -> None:
        self.model.save(folder)
        write_card(folder, card)
        plot_curves(folder / CURVES, self.progress.losses, self.progress.evaluations)

    def _card(self) -> dict[str, Any]:
        from embedsearch.encoders.sentence_transformer import fingerprint_directory

        progress = self.progress
        base = self.model.path
        return {
            **card_header(),
            "base": {"reference": self.config.base, "path": str(base), "fingerprint": fingerprint_directory(base)},
            "data": self.data.describe(),
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


def _batch_plan(config: TextTrainConfig, data: TrainingData, cluster: Cluster) -> BatchPlan:
    if config.batch_size % cluster.world:
        raise InvalidInputError(f"batch size {config.batch_size} does not split over {cluster.world} processes")
    try:
        return BatchPlan(data.pairs, config.batch_size, config.seed, config.epochs, config.max_steps)
    except ValueError:
        held = f" (after holding out {data.held_out} for dev)" if data.held_out else ""
        raise InvalidInputError(
            f"too few training examples for one batch: {len(data.pairs)}{held} do not fill a batch of "
            f"{config.batch_size} with distinct anchors and positives; lower --batch-size or add data"
        ) from None
