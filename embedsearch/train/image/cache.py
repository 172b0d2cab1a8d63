"""Training images decoded once: every file is read, flattened on white (alpha composited, palettes and
greyscale made RGB) and resized to the training resolution a single time, into one uint8 tensor that the
steps crop and jitter from. Decoding a PNG costs more than a step's augmentation of it, so a run that decoded
per step would spend most of its time in PIL.

The resize is the eval transform's (shortest side to ``size`` with bicubic, then a centre crop), so validation
and the saved encoder see the very pixels training saw before augmentation. Memory is ``3 * size**2`` bytes per
image: 12 kB at 64 px (5,700 emoji: 70 MB), 150 kB at 224 px (100,000 images: 15 GB).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from embedsearch.data.images import IMAGE_SUFFIXES, load_image
from embedsearch.errors import InvalidInputError

log = logging.getLogger("embedsearch")


@dataclass
class ImageCache:
    """``pixels``: uint8 ``(n, 3, size, size)``, row ``i`` the image ``paths[i]``; ``skipped``: the files that
    could not be decoded, as ``(path, reason)``, in input order."""

    pixels: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def decode_images(paths: Sequence[Path], size: int, *, quiet: bool = True, desc: str = "decoding images") -> ImageCache:
    """Decode ``paths`` into an :class:`ImageCache` at ``size`` x ``size``. An unreadable or corrupt file is
    logged as a warning (path and reason) and skipped; the caller decides whether too few are left."""
    resize = _resize(size)
    rows: list[torch.Tensor] = []
    kept: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in tqdm(paths, desc=desc, unit="image", disable=quiet, file=sys.stderr):
        try:
            picture = load_image(path)
        except ValueError as err:
            log.warning("skipped %s: %s", path, err)
            skipped.append((Path(path), str(err)))
            continue
        rows.append(resize(picture))
        kept.append(Path(path))
    pixels = torch.stack(rows) if rows else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return ImageCache(pixels, kept, skipped)


def _resize(size: int):
    """PIL image -> uint8 ``(3, size, size)``: open_clip's eval resize (``shortest``, bicubic, on the PIL image
    as there) and centre crop."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(size),
            v2.PILToTensor(),
        ]
    )


def list_image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (recursively) with an image suffix, sorted. Raises
    :class:`InvalidInputError` if ``folder`` is not a folder or holds no image files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder of images")
    files = sorted(p.resolve() for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InvalidInputError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def fingerprint_files(files: Sequence[Path], extra: str = "") -> str:
    """A hash of the files' paths, sizes and modification times (and ``extra``): cheap, and it changes when a
    training image is added, removed or rewritten, so a resumed run can tell its data changed."""
    digest = hashlib.sha256(extra.encode())
    for file in files:
        stat = Path(file).stat()
        digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
