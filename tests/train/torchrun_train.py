"""Run ``train_text`` with the settings of a JSON file; tests/train/test_slow.py starts it under torchrun."""

from __future__ import annotations

import json
import sys

from embedsearch.train import TextTrainConfig, train_text

if __name__ == "__main__":
    train_text(TextTrainConfig(**json.loads(open(sys.argv[1], encoding="utf-8").read())))
