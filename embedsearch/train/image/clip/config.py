"""The settings of an image–text run (CLIP or SigLIP): :class:`ClipTrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedsearch.train.image.config import ImageTrainConfig

CLIP_LOSSES = ("clip", "siglip")
NEGATIVES = ("auto", "batch", "all")
# mixup's Beta(a, a) for the CLIP loss: chosen on emoji with google's drawings held out (benchmarks/README.md)
DEFAULT_MIXUP = 1.0


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
    (``all`` where it applies). See :mod:`embedsearch.train.image.clip.loss`.

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
        """Whether the loss is :class:`embedsearch.train.image.clip.loss.SoftClipLoss` (mixup or all negatives)."""
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
