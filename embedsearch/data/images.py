"""Images as documents: reading, validating and flattening them once, in the data stage.

An image document has ``kind == "image"``, its relative path as ``text`` (the snippet a hit shows; it is not
embedded) and metadata ``image_path`` (absolute), ``path`` (relative, posix) and ``sha256`` (of the file's
bytes, so an upsert of an unchanged file is a no-op).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from embedsearch.data.documents import Document

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
WHITE = (255, 255, 255)


def load_image(source: str | Path | bytes | Any) -> Any:
    """Decode an image file (path or bytes) fully into an RGB ``PIL.Image``; transparent pixels are composited
    on white, so that an encoder never sees the arbitrary colour hidden under alpha 0. A ``PIL.Image`` is
    flattened the same way.

    Raises ``ValueError`` with the reason for a file that is missing, truncated or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _on_white(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
            picture.load()
            return _on_white(picture)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise ValueError(f"unreadable image ({type(err).__name__}: {err})") from None


def _on_white(picture: Any) -> Any:
    from PIL import Image

    if not picture.has_transparency_data:
        return picture.convert("RGB")
    rgba = picture.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)), rgba).convert("RGB")


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
    metadata = {"image_path": str(file.resolve()), "path": doc_id, "sha256": hashlib.sha256(data).hexdigest()}
    return Document(doc_id, doc_id, metadata, kind="image")
