"""``train_text``: contrastive training of text encoders on :class:`~embedsearch.train.loop.TrainingLoop`.

What is particular to text: the data (pairs, a BEIR folder's qrels or a raw corpus) and the dev set, the base
sentence-transformers model, each step's global batch of views and hard negatives, a (plain or GradCache) step
of symmetric InfoNCE, the dev set's nDCG@10 choosing the best weights, a linear learning-rate decay, and a
sentence-transformers model directory as the output. Under ``torchrun`` every process runs this same loop on
its share of each global batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from embedsearch.train.batching import EpochPlan
from embedsearch.train.distributed import init_from_env, shutdown
from embedsearch.train.loop import StepReport, TrainingLoop, too_few_examples
from embedsearch.train.schedules import linear_schedule
from embedsearch.train.settings import TrainResult
from embedsearch.train.text.batches import build_step_batch, epoch_batches
from embedsearch.train.text.config import TextTrainConfig
from embedsearch.train.text.data import load_training_data
from embedsearch.train.text.devset import evaluate_dev
from embedsearch.train.text.gradcache import contrastive_step
from embedsearch.train.text.loss import InfoNCELoss
from embedsearch.train.text.model import TextModel
from embedsearch.train.text.pairs import positives_by_anchor

BEST_METRIC = "ndcg@10"


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
        return TextRun(config, cluster, on_step).run()
    finally:
        shutdown(cluster)


class TextRun(TrainingLoop):
    """One text training run; see :func:`train_text`."""

    config: TextTrainConfig
    best_metric = BEST_METRIC
    split_name = "dev"
    loss_name = "InfoNCE loss"
    plotted_metrics = (BEST_METRIC,)
    divergence_hint = "lower --lr or raise --temperature"

    def _prepare(self) -> None:
        config = self.config
        self.data = load_training_data(config)
        self.fingerprint, self.has_val = self.data.fingerprint, self.data.dev is not None
        self.plan = self._plan()
        self.model = TextModel(config.base, self.cluster.device(config.device), config.max_length)
        self.related = positives_by_anchor(self.data.pairs)
        self.per_pair = config.hard_negatives if any(p.negatives for p in self.data.pairs) else 0
        self.loss_fn = InfoNCELoss(config.temperature)

    def _plan(self) -> EpochPlan:
        config, pairs = self.config, self.data.pairs

        def batches_of(epoch: int) -> list[list[int]]:
            return epoch_batches(pairs, config.batch_size, config.seed, epoch)

        try:
            return EpochPlan(batches_of, config.epochs, config.max_steps)
        except ValueError:
            raise too_few_examples(
                str(len(pairs)), self.data.held_out, "dev", config.batch_size, "anchors and positives"
            ) from None

    @property
    def trainable(self) -> nn.Module:
        return self.model.st

    def _schedule(self, total_steps: int, warmup: float) -> Callable[[int], float]:
        return linear_schedule(total_steps, warmup)

    def _backward(self, step: int) -> tuple[float, int]:
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
        loss_fn, chunk = self.loss_fn, self.config.cache_chunk
        return contrastive_step(self.model.embed, batch, loss_fn, self.params, self.cluster, chunk), len(pairs)

    def _metrics(self) -> dict[str, float]:
        return evaluate_dev(self.model.encode, self.data.dev)

    def skipped_records(self) -> int:
        return len(self.data.skipped)

    def _save_model(self, folder: Path) -> None:
        self.model.save(folder)

    def _describe(self) -> dict[str, Any]:
        from embedsearch.encoders.sentence_transformer import fingerprint_directory

        base = self.model.path
        return {
            "base": {"reference": self.config.base, "path": str(base), "fingerprint": fingerprint_directory(base)},
            "data": self.data.describe(),
        }
