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


def plot_curves(
    path: Path,
    losses: list[float],
    evaluations: list[dict[str, Any]],
    metrics: tuple[str, ...] = ("ndcg@10",),
    *,
    loss_name: str = "InfoNCE loss",
    split: str = "dev",
) -> Path:
    """A PNG with the training loss per step (left) and each of ``metrics`` on the ``split`` set per evaluation
    (right), drawn with matplotlib's Agg canvas (no display, and no change to pyplot's global backend).
    ``evaluations`` are ``{"step": int, "metrics": {name: value}}``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, eval_axes = figure.subplots(1, 2)
    loss_axes.plot(range(1, len(losses) + 1), losses, linewidth=1)
    loss_axes.set(title="training loss", xlabel="step", ylabel=loss_name)
    steps = [e["step"] for e in evaluations]
    for metric in metrics:
        eval_axes.plot(steps, [e["metrics"][metric] for e in evaluations], marker="o", label=metric)
    title = f"{split} {metrics[0]}" if len(metrics) == 1 else f"{split} metrics"
    eval_axes.set(title=title, xlabel="step", ylabel=metrics[0] if len(metrics) == 1 else "value")
    if len(metrics) > 1:
        eval_axes.legend(fontsize="small")
    for axes in (loss_axes, eval_axes):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path
