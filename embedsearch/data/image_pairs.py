"""Image–caption pairs files: JSONL lines ``{"image": path, "text": caption}`` (other fields are ignored).

An image may have several captions and a caption several images (the same name for three vendors' emoji), so
a pairs file is read as the distinct images, the distinct captions, and which caption belongs to which image:
the shape retrieval is evaluated on (every image against every distinct caption, both ways).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from embedsearch.errors import SourceError


@dataclass(frozen=True)
class ImagePairs:
    """The distinct ``images`` (absolute paths) and ``captions`` of a pairs file, both in first-seen order;
    ``image_to_texts[i]`` lists (ascending) the indexes into ``captions`` of the captions of ``images[i]``."""

    images: list[Path]
    captions: list[str]
    image_to_texts: list[list[int]]

    @property
    def text_to_images(self) -> list[list[int]]:
        """``text_to_images[j]``: the indexes into ``images`` of the images captioned ``captions[j]`` (ascending)."""
        owners: list[list[int]] = [[] for _ in self.captions]
        for image, texts in enumerate(self.image_to_texts):
            for text in texts:
                owners[text].append(image)
        return owners

    @property
    def pairs(self) -> int:
        """How many distinct (image, caption) pairs."""
        return sum(len(texts) for texts in self.image_to_texts)


def read_image_pairs(
    path: str | Path, images_root: str | Path | None = None, *, split: str | None = None
) -> ImagePairs:
    """Read a pairs file. A relative image path starts from ``images_root`` if given, else from the file's folder.

    ``split`` keeps only the lines whose ``"split"`` field equals it. Raises :class:`SourceError` naming
    ``file:line`` for a malformed line, listing (in ``problems``) every image file that does not exist, or when
    no pair is left.
    """
    path = Path(path)
    base = Path(images_root) if images_root is not None else path.parent
    images: dict[Path, set[int]] = {}
    captions: dict[str, int] = {}
    missing: list[str] = []
    for lineno, record in _records(path):
        if split is not None and record.get("split") != split:
            continue
        image, caption = _pair(path, lineno, record, base)
        if image not in images and not image.is_file():
            missing.append(f"{path}:{lineno}: {image}")
        images.setdefault(image, set()).add(captions.setdefault(caption, len(captions)))
    if missing:
        raise SourceError(f"{len(missing)} image file(s) named in {path} do not exist, e.g. {missing[0]}", missing)
    if not images:
        raise SourceError(f"{path}: no image-caption pairs" + (f" with split {split!r}" if split else ""))
    return ImagePairs(list(images), list(captions), [sorted(texts) for texts in images.values()])


def _records(path: Path):
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"cannot read {path}: {err}") from err
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SourceError(f"{path}:{lineno}: not JSON ({err})") from None
        if not isinstance(record, dict):
            raise SourceError(f"{path}:{lineno}: expected a JSON object with 'image' and 'text'")
        yield lineno, record


def _pair(path: Path, lineno: int, record: dict, base: Path) -> tuple[Path, str]:
    image, caption = record.get("image"), record.get("text")
    if not isinstance(image, str) or not image.strip() or not isinstance(caption, str) or not caption.strip():
        raise SourceError(f"{path}:{lineno}: a pair needs a non-empty 'image' path and a non-empty 'text'")
    return (base / image).resolve(), caption.strip()
