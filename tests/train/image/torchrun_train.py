"""Run ``train_clip`` with the settings of a JSON file ``{"float64": bool, "settings": {...}}`` (the tiny test
model registered first); tests/train/image/test_distributed.py starts it under torchrun."""

from __future__ import annotations

import contextlib
import json
import sys

from embedsearch.train import ClipTrainConfig, train_clip
from tests.train.float64 import float64_training
from tests.train.image.toys import register_tiny_model

if __name__ == "__main__":
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    register_tiny_model()
    with float64_training() if spec["float64"] else contextlib.nullcontext():
        train_clip(ClipTrainConfig(**spec["settings"]))
