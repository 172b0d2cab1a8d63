"""The settings of an image-encoder training run: :class:`ClipTrainConfig` (image–text pairs, CLIP or SigLIP)
and :class:`SimclrTrainConfig` (an image folder, SimCLR). The CLI's options map one to one onto their fields."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from embedsearch.errors import InvalidInputError
from embedsearch.train.config import RunSettings

CLIP_LOSSES = ("clip", "siglip")
NEGATIVES = ("auto", "batch", "all")
# mixup's Beta(a, a) for the CLIP loss: chosen on emoji with google's drawings held out (benchmarks/README.md)
DEFAULT_MIXUP = 1.0
# settings that change neither the weights nor the model chosen: a resumed run may differ in these


@dataclass(frozen=True, kw_only=True)
class ImageTrainConfig(RunSettings):
    """What every image-encoder run shares.

    ``model`` names the image tower: one of embedsearch's small configs (``es-resnet-64``, see
    :data:`embedsearch.train.clip_model.OUR_MODEL_CONFIGS`) or any open_clip config (``ViT-B-32``);
    ``image_size`` overrides its resolution. ``batch_size`` is the global batch (all processes together);
    ``max_steps`` overrides ``epochs``; ``warmup`` is a fraction of the steps, then the learning rate follows a
    cosine to 0. Augmentation: ``crop_scale`` (area range of the random resized crop), ``hflip`` (off by
    default: flips change what text and arrows mean), ``jitter`` (brightness, contrast and saturation strength),
    ``hue`` and ``grayscale`` (probability). ``val_fraction`` of the data is held out for validation.
    """

    out: Path
    model: str = "es-resnet-64"
    image_size: int | None = None
    batch_size: int = 128
    epochs: int = 30
    max_steps: int | None = None
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: bool = False
    # colour off by default: in icons and emoji colour is meaning (a red vs a blue heart), and on emoji with a
    # vendor held out, no jitter gave more recall than jitter 0.4 with 20% greyscale
    jitter: float = 0.0
    hue: float = 0.0
    grayscale: float = 0.0
    val_fraction: float = 0.05
    eval_every: int = 100
    save_every: int = 100
    seed: int = 42
    limit: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, str | Path) and name in self._path_fields():
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "crop_scale", tuple(float(x) for x in self.crop_scale))
        for problem in self._problems():
            raise InvalidInputError(problem)

    def _path_fields(self) -> tuple[str, ...]:
        return ("out",)

    def _problems(self) -> list[str]:
        low, high = self.crop_scale
        checks = [
            (self.batch_size >= 2, f"batch size must be at least 2 (in-batch negatives), got {self.batch_size}"),
            (self.image_size is None or self.image_size >= 16, f"image size must be >= 16, got {self.image_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.warmup < 1, f"warmup is a fraction of the steps in [0, 1), got {self.warmup}"),
            (self.max_grad_norm > 0, f"max grad norm must be > 0, got {self.max_grad_norm}"),
            (0 < low <= high <= 1, f"crop scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}"),
            (self.jitter >= 0, f"jitter must be >= 0, got {self.jitter}"),
            (0 <= self.hue <= 0.5, f"hue must be in [0, 0.5], got {self.hue}"),
            (0 <= self.grayscale <= 1, f"grayscale is a probability in [0, 1], got {self.grayscale}"),
            (0 <= self.val_fraction < 1, f"validation fraction must be in [0, 1), got {self.val_fraction}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max steps must be at least 1, got {self.max_steps}"),
            (self.eval_every >= 1 and self.save_every >= 1, "eval-every and save-every must be at least 1"),
            (self.limit is None or self.limit >= 1, f"limit must be at least 1, got {self.limit}"),
        ]
        return [message for ok, message in checks if not ok]


@dataclass(frozen=True, kw_only=True)
class ClipTrainConfig(ImageTrainConfig):
    """Every setting of :func:`embedsearch.train.train_clip` (see :class:`ImageTrainConfig` for the shared ones).

    ``pairs`` is a JSONL file of ``{"image": path, "text": caption}``; relative image paths are resolved against
    ``images_root`` if given, else against the pairs file's folder. ``split`` keeps only the lines of ``pairs``
    whose ``"split"`` field equals it. ``val`` is a pairs file to validate on instead of holding out
    ``val_fraction`` of the distinct captions (``val_fraction`` is then ignored). ``text_tower`` is ``minilm``,
    ``open_clip`` (open_clip's text transformer, trained from scratch) or a sentence-transformers / Hugging Face
    folder; ``lock_text`` (default: locked for a pretrained tower) freezes it but for its last
    ``unlocked_layers`` layers (LiT). ``loss`` is ``clip`` (symmetric InfoNCE) or ``siglip``; ``temperature`` is
    the initial, learnable one (default 0.07 for CLIP, 0.1 for SigLIP). ``context_length`` is the tokens per caption (at
    most what a pretrained tower has positions for). ``mixup`` is the Beta strength of mixup (default
    :data:`DEFAULT_MIXUP` for CLIP; 0 turns it off; CLIP only); ``negatives`` is ``batch`` (CLIP's in-batch
    negatives), ``all`` (image->text against every training caption: CLIP with a frozen text tower) or ``auto``
    (``all`` where it applies). See :mod:`embedsearch.train.clip_loss`.

    The default image tower is ``es-resnet-32`` for 100 epochs: on 2 CPU cores, on emoji with one vendor's
    drawing style held out, 32 px reached more recall per minute than 64 px (benchmarks/README.md).
    """

    model: str = "es-resnet-32"
    epochs: int = 100
    pairs: Path
    images_root: Path | None = None
    split: str | None = None
    val: Path | None = None
    text_tower: str = "minilm"
    lock_text: bool | None = None
    unlocked_layers: int = 0
    loss: str = "clip"
    temperature: float | None = None
    context_length: int = 77
    mixup: float | None = None
    negatives: str = "auto"

    def _path_fields(self) -> tuple[str, ...]:
        return ("out", "pairs", "images_root", "val")

    @property
    def text_is_pretrained(self) -> bool:
        return self.text_tower != "open_clip"

    @property
    def text_locked(self) -> bool:
        """Whether the text tower is frozen (all but ``unlocked_layers`` of it)."""
        return self.text_is_pretrained if self.lock_text is None else self.lock_text

    @property
    def text_frozen(self) -> bool:
        """Whether no text weight trains: then each caption's features are computed once and reused."""
        return self.text_locked and self.unlocked_layers == 0

    @property
    def mixup_alpha(self) -> float:
        """The mixup strength: ``mixup`` if given, else DEFAULT_MIXUP for the CLIP loss and 0 (off) for SigLIP."""
        if self.mixup is not None:
            return self.mixup
        return DEFAULT_MIXUP if self.loss == "clip" else 0.0

    @property
    def all_negatives(self) -> bool:
        """Whether image->text is scored against every training caption (``negatives``: ``all``, or ``auto``
        with the CLIP loss and a frozen text tower, whose caption features are computed once)."""
        if self.negatives == "auto":
            return self.loss == "clip" and self.text_frozen
        return self.negatives == "all"

    @property
    def soft_loss(self) -> bool:
        """Whether the loss is :class:`embedsearch.train.clip_loss.SoftClipLoss` (mixup or all negatives)."""
        return self.loss == "clip" and (self.mixup_alpha > 0 or self.all_negatives)

    @property
    def initial_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.07 if self.loss == "clip" else 0.1

    def _problems(self) -> list[str]:
        checks = [
            (self.loss in CLIP_LOSSES, f"unknown loss {self.loss!r}; choose one of {', '.join(CLIP_LOSSES)}"),
            (self.unlocked_layers >= 0, f"unlocked layers must be >= 0, got {self.unlocked_layers}"),
            (
                not (self.text_tower == "open_clip" and self.lock_text),
                "--lock-text needs a pretrained text tower; open_clip's text transformer trains from scratch",
            ),
            (
                not (self.unlocked_layers and not self.text_locked),
                "--unlocked-layers applies to a locked text tower (--lock-text)",
            ),
            (
                self.temperature is None or 0 < self.temperature < 100,
                f"temperature must be in (0, 100), got {self.temperature}",
            ),
            (self.context_length >= 8, f"context length must be at least 8, got {self.context_length}"),
            (self.mixup is None or self.mixup >= 0, f"mixup must be >= 0, got {self.mixup}"),
            (not (self.mixup and self.loss != "clip"), "--mixup applies to the clip loss"),
            (self.negatives in NEGATIVES, f"unknown negatives {self.negatives!r}; choose {', '.join(NEGATIVES)}"),
            (
                not (self.negatives == "all" and not (self.loss == "clip" and self.text_frozen)),
                "--negatives all needs the clip loss and a locked text tower (its caption features are computed once)",
            ),
        ]
        return super()._problems() + [message for ok, message in checks if not ok]


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
