"""Run ``train_clip`` with the settings of a JSON file (the tiny test model registered first);
tests/train/test_image_distributed.py starts it under torchrun."""

from __future__ import annotations

import json
import sys

from embedsearch.train import ClipTrainConfig, train_clip
from tests.train.image_toys import register_tiny_model

if __name__ == "__main__":
    register_tiny_model()
    train_clip(ClipTrainConfig(**json.loads(open(sys.argv[1], encoding="utf-8").read())))
