"""The data of an image–text run: the pairs file read, a validation split held out, every image decoded once.

The validation split holds out a seeded ``val_fraction`` of the distinct captions (at least one, and never all)
with every image that has one of them; it validates on those images against those captions only. Training
keeps the other images with their other captions, so no validation image or caption is ever trained on.
With ``val`` (a second pairs file) the whole training file trains and that file validates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data.image_pairs import ImagePairs, read_image_pairs
from embedsearch.train.image.cache import ImageCache, decode_images, fingerprint_files
from embedsearch.train.image.clip.config import ClipTrainConfig


@dataclass
class PairSet:
    """Images (rows of the :class:`ImageCache`) and, per image, its captions (indexes into the caption list)."""

    rows: list[int]
    image_to_texts: list[list[int]]

    @property
    def captions(self) -> list[int]:
        """The distinct captions of the set, ascending."""
        return sorted({t for texts in self.image_to_texts for t in texts})

    @property
    def pairs(self) -> int:
        return sum(len(texts) for texts in self.image_to_texts)


@dataclass
class ClipData:
    """Decoded images, every distinct caption (train and validation), the two sets, and where they came from."""

    cache: ImageCache
    captions: list[str]
    train: PairSet
    val: PairSet | None
    files: dict[str, str]
    fingerprint: str

    def describe(self) -> dict[str, Any]:
        """What the training card says about the data."""
        return {
            "files": self.files,
            "train": {"images": len(self.train.rows), "captions": len(self.train.captions), "pairs": self.train.pairs},
            "val": None
            if self.val is None
            else {"images": len(self.val.rows), "captions": len(self.val.captions), "pairs": self.val.pairs},
            "skipped_images": [{"path": str(p), "reason": r} for p, r in self.cache.skipped],
        }


def load_clip_data(config: ClipTrainConfig, size: int) -> ClipData:
    """Read ``config.pairs`` (and ``config.val``), split, and decode the images at ``size`` px.

    Raises :class:`SourceError` for a malformed file or missing images (see
    :func:`embedsearch.data.read_image_pairs`); a corrupt image is skipped with a warning.
    """
    train = read_image_pairs(config.pairs, config.images_root, split=config.split)
    if config.limit:
        train = _first_images(train, config.limit)
    if config.val is not None:
        val = read_image_pairs(config.val, config.images_root)
        captions, train_set, val_set, paths = _merge(train, val)
    else:
        captions, train_set, val_set = train.captions, *_hold_out(train, config.val_fraction, config.seed)
        paths = train.images
    cache = decode_images(paths, size, quiet=config.quiet)
    train_set = _drop_skipped(train_set, paths, cache)
    val_set = _drop_skipped(val_set, paths, cache) if val_set is not None else None
    files = {str(f): _sha256(f) for f in (config.pairs, config.val) if f is not None}
    fingerprint = fingerprint_files(paths, extra=repr(sorted(files.items())))
    return ClipData(cache, captions, train_set, val_set if val_set and val_set.rows else None, files, fingerprint)


def _first_images(pairs: ImagePairs, limit: int) -> ImagePairs:
    keep = pairs.image_to_texts[:limit]
    used = sorted({t for texts in keep for t in texts})
    new = {old: i for i, old in enumerate(used)}
    return ImagePairs(
        pairs.images[:limit], [pairs.captions[t] for t in used], [[new[t] for t in texts] for texts in keep]
    )


def _hold_out(pairs: ImagePairs, fraction: float, seed: int) -> tuple[PairSet, PairSet | None]:
    everything = PairSet(list(range(len(pairs.images))), [list(t) for t in pairs.image_to_texts])
    n = len(pairs.captions)
    count = min(max(1, round(fraction * n)), n - 1) if fraction > 0 else 0
    if count == 0:
        return everything, None
    held = set(np.random.default_rng([seed, 5]).permutation(n)[:count].tolist())
    val_rows = [i for i, texts in enumerate(pairs.image_to_texts) if held & set(texts)]
    val = PairSet(val_rows, [[t for t in pairs.image_to_texts[i] if t in held] for i in val_rows])
    kept = set(val_rows)
    train = [(i, [t for t in texts if t not in held]) for i, texts in enumerate(pairs.image_to_texts) if i not in kept]
    train = [(i, texts) for i, texts in train if texts]
    return PairSet([i for i, _ in train], [texts for _, texts in train]), val


def _merge(train: ImagePairs, val: ImagePairs) -> tuple[list[str], PairSet, PairSet, list[Path]]:
    """One caption list and one image list for both files (an image or caption in both is stored once)."""
    captions = {c: i for i, c in enumerate(train.captions)}
    for caption in val.captions:
        captions.setdefault(caption, len(captions))
    images = {p: i for i, p in enumerate(train.images)}
    for image in val.images:
        images.setdefault(image, len(images))
    train_set = PairSet(list(range(len(train.images))), [list(t) for t in train.image_to_texts])
    val_texts = [[captions[val.captions[t]] for t in texts] for texts in val.image_to_texts]
    return list(captions), train_set, PairSet([images[p] for p in val.images], val_texts), list(images)


def _drop_skipped(pair_set: PairSet, paths: list[Path], cache: ImageCache) -> PairSet:
    """Re-index ``pair_set`` from positions in ``paths`` to rows of ``cache``, leaving out skipped images."""
    row_of = {path: row for row, path in enumerate(cache.paths)}
    kept = [(row_of.get(paths[i]), texts) for i, texts in zip(pair_set.rows, pair_set.image_to_texts, strict=True)]
    kept = [(row, texts) for row, texts in kept if row is not None]
    return PairSet([row for row, _ in kept], [texts for _, texts in kept])


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
