"""What the image-encoder runs (CLIP / SigLIP in :mod:`embedsearch.train.image.clip`, SimCLR in
:mod:`embedsearch.train.image.simclr`) add to :class:`~embedsearch.train.loop.TrainingLoop`: AdamW without
weight decay on gains, biases and the temperature; warm-up, then a cosine decay; the temperature clamped as
open_clip clamps it; mean Recall@k choosing the best weights; the augmentation the config asks for; and an
open_clip model directory as the output. A subclass says what a step's loss is, how to validate, and what the
card says of its data.

Augmentation draws from a seed per sample (see :mod:`embedsearch.train.image.augment`), so it depends on the
seed and the step alone, not on the number of processes; dropout draws from torch's RNG, seeded and
checkpointed by the loop as for every trainer. BatchNorm (in the ResNet towers) normalises over each process's
share of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedsearch.train.distributed import average_gradients, mean_over_processes
from embedsearch.train.image.augment import TrainAugment
from embedsearch.train.image.config import ImageTrainConfig
from embedsearch.train.image.towers import BuiltModel
from embedsearch.train.loop import TrainingLoop, too_few_examples
from embedsearch.train.schedules import cosine_schedule

BEST_METRIC = "mean_recall"
NO_DECAY_NAMES = ("bn", "ln", "bias", "logit_scale", "logit_bias", "norm")


class ImageRun(TrainingLoop):
    """The state of one image run. Subclasses set, in :meth:`_prepare`: ``self.built`` (a
    :class:`~embedsearch.train.image.towers.BuiltModel`), ``self.plan``, ``self.fingerprint`` and
    ``self.has_val``; and implement :meth:`_loss`, :meth:`_metrics` and :meth:`_describe_data`."""

    config: ImageTrainConfig
    built: BuiltModel
    kind = ""
    modalities: tuple[str, ...] = ("image",)
    best_metric = BEST_METRIC
    plotted_metrics: tuple[str, ...] = (BEST_METRIC,)

    def _loss(self, batch: list, step: int) -> tuple[torch.Tensor, int]:
        """This process's loss of global batch ``batch`` at ``step`` and the global number of samples."""
        raise NotImplementedError

    def _describe_data(self) -> dict[str, Any]:
        """The data part of the training card."""
        raise NotImplementedError

    def _text_tower_source(self) -> Path | None:
        return None

    @property
    def model(self) -> nn.Module:
        """The open_clip model (what the output holds)."""
        return self.built.model

    @property
    def trainable(self) -> nn.Module:
        return self.model

    @property
    def published(self) -> nn.Module:
        return self.model

    def _param_groups(self) -> list[dict[str, Any]]:
        """AdamW groups as open_clip_train makes them: no weight decay on 1-d tensors (gains, biases) and on the
        temperature and bias of the logits."""
        decay, no_decay = [], []
        for name, param in self.trainable.named_parameters():
            if not param.requires_grad:
                continue
            plain = param.ndim < 2 or any(part in name for part in NO_DECAY_NAMES)
            (no_decay if plain else decay).append(param)
        return [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def _schedule(self, total_steps: int, warmup: float) -> Callable[[int], float]:
        return cosine_schedule(total_steps, warmup)

    def _backward(self, step: int) -> tuple[float, int]:
        self._train_mode()
        loss, samples = self._loss(self.plan.batch(step), step)
        loss.backward()
        average_gradients(self.params, self.cluster)
        return mean_over_processes(loss.item(), self.cluster, self.device), samples

    def _after_update(self) -> None:
        with torch.no_grad():  # as open_clip does: a temperature below 0.01 makes the logits overflow
            self.model.logit_scale.clamp_(0, math.log(100))

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

    def as_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised float pixels as the image tower takes them: on its device, in its dtype."""
        return pixels.to(self.device, next(self.model.visual.parameters()).dtype)

    def local_share(self, batch: list) -> slice:
        """This process's slice of a global batch."""
        per = len(batch) // self.cluster.world
        return slice(self.cluster.rank * per, (self.cluster.rank + 1) * per)

    def too_few(self, count: int, held_out: int, what: str) -> Exception:
        return too_few_examples(f"{count} images", held_out, "validation", self.config.batch_size, what)

    def _save_model(self, folder: Path) -> None:
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

    def _versions(self) -> dict[str, str]:
        import open_clip

        return {"open_clip": open_clip.__version__}

    def _describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": {
                "name": self.config.model,
                "model_cfg": self.built.model_cfg,
                "preprocess_cfg": self.built.preprocess_cfg,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "trained_parameters": sum(p.numel() for p in self.params),
            },
            "data": self._describe_data(),
        }
