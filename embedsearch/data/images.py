"""Images as documents: reading, validating and flattening them once, in the data stage.

An image document has ``kind == "image"``, its relative path as ``text`` (the snippet a hit shows; it is not
embedded), its file as ``source`` (read while indexing, not stored) and metadata ``path`` (relative, posix) and
``sha256`` (of the file's bytes, so an upsert of an unchanged file is a no-op). The index keeps a small
thumbnail of each image instead of its path, so that serving an image never reads a file named by an index.

Decoding is bounded: an image whose header declares more than :data:`MAX_IMAGE_PIXELS` pixels is refused
before its pixels are decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

from embedsearch.data.documents import Document

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
WHITE = (255, 255, 255)
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels (e.g. 7,700 x 5,200): about 160 MB once decoded as RGBA
THUMBNAIL_PIXELS = 256  # the longer side of a stored thumbnail


def load_image(source: str | Path | bytes | Any) -> Any:
    """Decode an image file (path or bytes) fully into an RGB ``PIL.Image``; transparent pixels are composited
    on white, so that an encoder never sees the arbitrary colour hidden under alpha 0. A ``PIL.Image`` is
    flattened the same way.

    Raises ``ValueError`` with the reason for a file that is missing, truncated, not an image, or larger than
    :data:`MAX_IMAGE_PIXELS` (checked from its header, before decoding).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _on_white(source)
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the stricter check below refuses such images
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        with picture:
            check_pixels(picture.size)
            picture.load()
            return _on_white(picture)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise ValueError(f"unreadable image ({type(err).__name__}: {err})") from None


def check_pixels(size: tuple[int, int]) -> None:
    """``ValueError`` for an image of more than :data:`MAX_IMAGE_PIXELS` pixels."""
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"{width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS:,} pixels")


def _on_white(picture: Any) -> Any:
    from PIL import Image

    if not picture.has_transparency_data:
        return picture if picture.mode == "RGB" else picture.convert("RGB")
    rgba = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)), rgba).convert("RGB")


def thumbnail(picture: Any) -> bytes:
    """A WebP of an RGB picture, at most :data:`THUMBNAIL_PIXELS` on its longer side (what an index stores)."""
    copy = picture.copy()
    copy.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    out = io.BytesIO()
    copy.save(out, format="WEBP", quality=85)
    return out.getvalue()


def image_document(root: Path, file: Path) -> Document:
    """The :class:`Document` of image ``file`` under folder ``root`` (its id is the relative posix path).

    Raises ``ValueError`` (with the reason) for an unreadable or undecodable file.
    """
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ValueError(f"unreadable ({err.__class__.__name__}: {err.strerror})") from None
    load_image(data)  # decode now, so that a corrupt file is reported with the other bad records
    doc_id = file.relative_to(root).as_posix()
    metadata = {"path": doc_id, "sha256": hashlib.sha256(data).hexdigest()}
    return Document(doc_id, doc_id, metadata, kind="image", source=str(file.resolve()))
