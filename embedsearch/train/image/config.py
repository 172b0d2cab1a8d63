"""The settings every image-encoder run shares (:class:`ClipTrainConfig` and :class:`SimclrTrainConfig` add their
own); the CLI's options map one to one onto their fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedsearch.train.settings import RunConfig


@dataclass(frozen=True, kw_only=True)
class ImageTrainConfig(RunConfig):
    """What every image-encoder run shares (see :class:`~embedsearch.train.settings.RunConfig` for the fields
    every trainer has).

    ``model`` names the image tower: one of embedsearch's small configs (``es-resnet-64``, see
    :data:`embedsearch.train.image.towers.OUR_MODEL_CONFIGS`) or any open_clip config (``ViT-B-32``);
    ``image_size`` overrides its resolution. After ``warmup`` the learning rate follows a cosine to 0.
    Augmentation: ``crop_scale`` (area range of the random resized crop), ``hflip`` (off by default: flips
    change what text and arrows mean), ``jitter`` (brightness, contrast and saturation strength), ``hue`` and
    ``grayscale`` (probability). ``val_fraction`` of the data is held out for validation.
    """

    out: Path
    model: str = "es-resnet-64"
    image_size: int | None = None
    batch_size: int = 128
    epochs: int = 30
    lr: float = 2e-3
    weight_decay: float = 0.1
    crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: bool = False
    # colour off by default: in icons and emoji colour is meaning (a red vs a blue heart), and on emoji with a
    # vendor held out, no jitter gave more recall than jitter 0.4 with 20% greyscale
    jitter: float = 0.0
    hue: float = 0.0
    grayscale: float = 0.0
    val_fraction: float = 0.05

    def _tuple_fields(self) -> tuple[str, ...]:
        return ("crop_scale",)

    def _problems(self) -> list[str]:
        low, high = self.crop_scale
        checks = [
            (self.image_size is None or self.image_size >= 16, f"image size must be >= 16, got {self.image_size}"),
            (0 < low <= high <= 1, f"crop scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}"),
            (self.jitter >= 0, f"jitter must be >= 0, got {self.jitter}"),
            (0 <= self.hue <= 0.5, f"hue must be in [0, 0.5], got {self.hue}"),
            (0 <= self.grayscale <= 1, f"grayscale is a probability in [0, 1], got {self.grayscale}"),
            (0 <= self.val_fraction < 1, f"validation fraction must be in [0, 1), got {self.val_fraction}"),
        ]
        return super()._problems() + [message for ok, message in checks if not ok]
