"""Evaluate an image–text encoder on a pairs file: Recall@1/5/10 from images to captions and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedsearch.data import read_image_pairs
from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import UnsupportedModalityError
from embedsearch.metrics import image_text_recall


@dataclass
class PairsReport:
    """``metrics`` (``image_to_text_R@k``, ``text_to_image_R@k``) over ``images`` distinct images and
    ``captions`` distinct captions, which form ``pairs`` distinct pairs."""

    metrics: dict[str, float]
    images: int
    captions: int
    pairs: int

    def to_dict(self) -> dict:
        return {**self.metrics, "images": self.images, "captions": self.captions, "pairs": self.pairs}


def evaluate_pairs(
    encoder: Encoder | str,
    pairs_file: str | Path,
    images_root: str | Path | None = None,
    *,
    split: str | None = None,
    progress: bool = False,
) -> PairsReport:
    """Embed every image and every distinct caption of ``pairs_file`` and score retrieval both ways.

    ``encoder`` is an :class:`Encoder` or a reference for :func:`get_encoder` (loaded after the file is read and
    its images found). Relative image paths start from ``images_root`` (default: the file's folder); ``split``
    keeps the lines whose ``"split"`` field equals it. Raises :class:`SourceError` for a malformed file or
    missing images, :class:`UnsupportedModalityError` if the encoder does not embed both images and text.
    """
    pairs = read_image_pairs(pairs_file, images_root, split=split)
    model = get_encoder(encoder) if isinstance(encoder, str) else encoder
    if not {"image", "text"} <= model.modalities:
        raise UnsupportedModalityError(
            f"encoder {model.name!r} embeds only {' and '.join(sorted(model.modalities))}; "
            "image-text retrieval needs an encoder with an image tower and a text tower"
        )
    image_vectors = model.encode_image(pairs.images, progress="images" if progress else False)
    text_vectors = model.encode_text(pairs.captions, progress="captions" if progress else False)
    metrics = image_text_recall(image_vectors, text_vectors, pairs.image_to_texts)
    return PairsReport(metrics, len(pairs.images), len(pairs.captions), pairs.pairs)
