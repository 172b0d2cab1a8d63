"""The settings of a SimCLR run on an image folder: :class:`SimclrTrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedsearch.train.image.config import ImageTrainConfig


@dataclass(frozen=True, kw_only=True)
class SimclrTrainConfig(ImageTrainConfig):
    """Every setting of :func:`embedsearch.train.train_simclr` (see :class:`ImageTrainConfig` for the shared
    ones): ``images`` is a folder searched recursively for images. Two augmented views of an image are a
    positive pair under NT-Xent with a fixed ``temperature``; the loss sees the output of a projection head
    of ``projection_dim`` (dropped at the end, as in SimCLR). Augmentation is stronger by default than for
    CLIP, because it is the only training signal.
    """

    images: Path
    crop_scale: tuple[float, float] = (0.3, 1.0)
    jitter: float = 0.4
    grayscale: float = 0.2
    temperature: float = 0.1
    projection_dim: int = 128

    def _path_fields(self) -> tuple[str, ...]:
        return ("out", "images")

    def _problems(self) -> list[str]:
        checks = [
            (0 < self.temperature < 100, f"temperature must be in (0, 100), got {self.temperature}"),
            (self.projection_dim >= 1, f"projection dim must be at least 1, got {self.projection_dim}"),
        ]
        return super()._problems() + [message for ok, message in checks if not ok]
