"""The record a trained model directory carries: ``training_card.json`` and ``training_curves.png``."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

CARD = "training_card.json"
CURVES = "training_curves.png"
CARD_FORMAT = 1


def card_header() -> dict[str, Any]:
    """Format, creation time and the versions that produced the model."""
    import sentence_transformers
    import torch

    return {
        "format": CARD_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "embedsearch": version("embedsearch"),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "python": platform.python_version(),
        },
    }


def write_card(directory: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as indented JSON to ``directory/training_card.json``."""
    path = directory / CARD
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def plot_curves(path: Path, losses: list[float], evaluations: list[dict[str, Any]]) -> Path:
    """A PNG with the training loss per step (left) and dev nDCG@10 per evaluation (right), drawn with
    matplotlib's Agg canvas (no display, and no change to pyplot's global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, dev_axes = figure.subplots(1, 2)
    loss_axes.plot(range(1, len(losses) + 1), losses, linewidth=1)
    loss_axes.set(title="training loss", xlabel="step", ylabel="InfoNCE loss")
    steps = [e["step"] for e in evaluations]
    dev_axes.plot(steps, [e["metrics"]["ndcg@10"] for e in evaluations], marker="o")
    dev_axes.set(title="dev nDCG@10", xlabel="step", ylabel="nDCG@10")
    for axes in (loss_axes, dev_axes):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path
