"""``train_simclr``: self-supervised training of an image encoder on an unlabelled image folder, for
image-to-image search.

SimCLR (Chen, Kornblith, Norouzi and Hinton, 2020): two augmented views of one image are a positive pair, every
other view in the global batch a negative, under NT-Xent (:class:`embedsearch.train.image.simclr.loss.NTXentLoss`). The
loss sees the image tower's features through a small projection head (linear, ReLU, linear), which is dropped
at the end: the saved encoder embeds with the tower's own features, which the paper found better for
downstream use than the head's.

Validation holds out a seeded ``val_fraction`` of the images and makes two fixed augmented views of each (the
same at every evaluation): ``image_to_image_R@k`` is the fraction of first views whose second view is among
the ``k`` nearest second views. It measures what the loss asks for, invariance to the augmentation, on images
never trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedsearch.errors import InvalidInputError
from embedsearch.metrics import image_text_recall
from embedsearch.train.batching import EpochPlan
from embedsearch.train.distributed import init_from_env, shutdown
from embedsearch.train.image.augment import sample_seeds
from embedsearch.train.image.cache import decode_images, fingerprint_files, list_image_files
from embedsearch.train.image.run import BEST_METRIC, ImageRun
from embedsearch.train.image.simclr.config import SimclrTrainConfig
from embedsearch.train.image.simclr.loss import NTXentLoss
from embedsearch.train.image.towers import BuiltModel, build_open_clip, vision_config
from embedsearch.train.loop import StepReport
from embedsearch.train.settings import TrainResult

ENCODE_BATCH = 256
RECALLS = tuple(f"image_to_image_R@{k}" for k in (1, 5, 10))
VAL_STREAMS = (101, 102)  # augmentation seed streams of the two validation views (training uses 0 and 1)


def train_simclr(config: SimclrTrainConfig, on_step: Callable[[StepReport], None] | None = None) -> TrainResult:
    """Train an image encoder with SimCLR on the images under ``config.images`` and write it to ``config.out``
    (an open_clip model directory with the image modality only, ``training_card.json`` and
    ``training_curves.png``; nothing is written there before the end).

    Raises :class:`InvalidInputError` for a folder without images, bad settings or too few images for a batch,
    :class:`OutputExistsError` for an existing output without ``overwrite``, :class:`TrainingError` for a
    diverging loss or a checkpoint of other settings or data. Unreadable images are skipped with a warning.
    """
    cluster = init_from_env(config.device)
    try:
        return SimclrRun(config, cluster, on_step).run()
    finally:
        shutdown(cluster)


class SimclrRun(ImageRun):
    """One SimCLR run; see :func:`train_simclr`."""

    config: SimclrTrainConfig
    kind = "simclr"
    loss_name = "NT-Xent loss"
    plotted_metrics = (*RECALLS, BEST_METRIC)

    def _prepare(self) -> None:
        config = self.config
        vision, _, _ = vision_config(config.model, config.image_size)
        files = list_image_files(config.images)[: config.limit]
        self.cache = decode_images(files, vision["image_size"], quiet=config.quiet)
        if not len(self.cache):
            raise InvalidInputError(f"none of the {len(files)} image files under {config.images} could be decoded")
        self.fingerprint = fingerprint_files(files)
        self.train_rows, self.val_rows = _hold_out(len(self.cache), config.val_fraction, config.seed)
        self.has_val = bool(self.val_rows)
        self.plan = self._plan()
        torch.manual_seed(config.seed)
        self.built = build_image_model(config.model, config.image_size)
        self.built.model.to(self.device)
        dim = self.built.model_cfg["embed_dim"]
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, config.projection_dim))
        self.head.to(self.device)
        self.networks = nn.ModuleDict({"model": self.built.model, "head": self.head})
        self.augment = self.train_augment()
        self.loss_fn = NTXentLoss(config.temperature, self.cluster)

    def _plan(self) -> EpochPlan:
        config, rows = self.config, self.train_rows

        def batches_of(epoch: int) -> list[list[int]]:
            batches = image_batches(len(rows), config.batch_size, config.seed, epoch)
            return [[rows[i] for i in batch] for batch in batches]

        try:
            return EpochPlan(batches_of, config.epochs, config.max_steps)
        except ValueError:
            raise self.too_few(len(rows), len(self.val_rows), "images") from None

    @property
    def trainable(self) -> nn.Module:
        return self.networks

    def _loss(self, batch: list[int], step: int) -> tuple[torch.Tensor, int]:
        share = self.local_share(batch)
        pixels = self.cache.pixels[torch.tensor(batch[share])]
        first = self.augment(pixels, sample_seeds(self.config.seed, step, len(batch), stream=0)[share])
        second = self.augment(pixels, sample_seeds(self.config.seed, step, len(batch), stream=1)[share])
        features = self.head(self.model.encode_image(self.as_input(torch.cat([first, second]))))
        return self.loss_fn(*features.chunk(2)), len(batch)

    def _metrics(self) -> dict[str, float]:
        views = [self._embed_view(stream) for stream in VAL_STREAMS]
        recall = image_text_recall(views[0], views[1], [[i] for i in range(len(self.val_rows))])
        metrics = {f"image_to_image_R@{k}": recall[f"image_to_text_R@{k}"] for k in (1, 5, 10)}
        return {**metrics, BEST_METRIC: float(np.mean(list(metrics.values())))}

    def _embed_view(self, stream: int) -> np.ndarray:
        """Normalised float32 features of one fixed augmented view of every validation image."""
        seeds = sample_seeds(self.config.seed, 0, len(self.val_rows), stream=stream)
        parts = []
        for start in range(0, len(self.val_rows), ENCODE_BATCH):
            rows = torch.tensor(self.val_rows[start : start + ENCODE_BATCH])
            pixels = self.as_input(self.augment(self.cache.pixels[rows], seeds[start : start + ENCODE_BATCH]))
            parts.append(F.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu().numpy())
        return np.concatenate(parts)

    def skipped_images(self) -> int:
        return len(self.cache.skipped)

    def _describe_data(self) -> dict[str, Any]:
        return {
            "folder": str(self.config.images),
            "images": len(self.cache),
            "train_images": len(self.train_rows),
            "val_images": len(self.val_rows),
            "skipped_images": [{"path": str(p), "reason": r} for p, r in self.cache.skipped],
        }


def image_batches(count: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Image indexes of each full batch of epoch ``epoch``: a seeded permutation of ``range(count)`` in chunks."""
    order = np.random.default_rng([seed, epoch, 13]).permutation(count).tolist()
    return [order[i : i + batch_size] for i in range(0, count - batch_size + 1, batch_size)]


def build_image_model(name: str, image_size: int | None) -> BuiltModel:
    """A fresh open_clip ``CLIP`` for image-only training: image tower ``name`` and a placeholder text tower
    (one layer, width 8, 8 tokens: open_clip's ``CLIP`` always has one; the saved model declares only the image
    modality, so it is never used)."""
    vision, embed_dim, _ = vision_config(name, image_size)
    text_cfg = {"context_length": 8, "vocab_size": 8, "width": 8, "heads": 1, "layers": 1}
    return build_open_clip(name, {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text_cfg})


def _hold_out(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train rows, validation rows)``: a seeded ``fraction`` of ``range(count)`` (at least one, never all)."""
    held = min(max(1, round(fraction * count)), count - 1) if fraction > 0 else 0
    chosen = set(np.random.default_rng([seed, 6]).permutation(count)[:held].tolist())
    return [i for i in range(count) if i not in chosen], sorted(chosen)
