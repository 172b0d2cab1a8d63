"""Run ``train_text`` with the settings of a JSON file ``{"float64": bool, "settings": {...}}``;
tests/train/text/test_slow.py starts it under torchrun."""

from __future__ import annotations

import contextlib
import json
import sys

from embedsearch.train import TextTrainConfig, train_text
from tests.train.float64 import float64_training

if __name__ == "__main__":
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    with float64_training() if spec["float64"] else contextlib.nullcontext():
        train_text(TextTrainConfig(**spec["settings"]))
