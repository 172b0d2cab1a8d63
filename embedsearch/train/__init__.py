"""Contrastive training of encoders. Imports only ``data``, ``encoders``, ``metrics``, ``errors``, ``files`` and
``runtime``; hands its result over as a model directory that the encoder registry loads by path.

``train_text(TextTrainConfig(data=..., out=...))`` trains a text encoder on pairs (a pairs JSONL file or the
qrels of a BEIR folder, optionally with mined hard negatives) or self-supervised on a raw corpus (random crops,
or dropout as the augmentation), with symmetric InfoNCE over in-batch negatives.

``train_clip(ClipTrainConfig(pairs=..., out=...))`` trains an open_clip image–text model on image–caption pairs
(CLIP or SigLIP loss, a pretrained text tower locked or not); ``train_simclr(SimclrTrainConfig(images=...,
out=...))`` trains an image encoder self-supervised on an image folder. Both write an open_clip model directory.

Layout: the one training loop (:mod:`~embedsearch.train.loop`) and what every trainer shares (``settings``,
``checkpoint``, ``distributed``, ``batching``, ``schedules``, ``card``) at the top; ``text/`` trains text
encoders; ``image/`` image encoders, with ``image/clip/`` and ``image/simclr/``.

Names are imported lazily, so that reading pairs (``embedsearch.train.text.pairs``) or a config does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClipTrainConfig": "embedsearch.train.image.clip.config",
    "InfoNCELoss": "embedsearch.train.text.loss",
    "NTXentLoss": "embedsearch.train.image.simclr.loss",
    "Pair": "embedsearch.train.text.pairs",
    "read_beir_pairs": "embedsearch.train.text.pairs",
    "read_pairs_file": "embedsearch.train.text.pairs",
    "SimclrTrainConfig": "embedsearch.train.image.simclr.config",
    "StepReport": "embedsearch.train.loop",
    "TextTrainConfig": "embedsearch.train.text.config",
    "TrainResult": "embedsearch.train.settings",
    "train_clip": "embedsearch.train.image.clip.trainer",
    "train_simclr": "embedsearch.train.image.simclr.trainer",
    "train_text": "embedsearch.train.text.trainer",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedsearch.train' has no attribute {name!r}")
