"""The document record every source is turned into."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ID_FIELDS = ("_id", "id")
TEXT_FIELDS = ("title", "text")
KINDS = ("text", "image")


@dataclass(frozen=True)
class Document:
    """One searchable document: a unique ``id``, the ``text`` that is embedded, and free-form ``metadata``.

    A document of ``kind == "image"`` is embedded from the file ``metadata["image_path"]`` instead; its
    ``text`` is only the snippet a hit shows (see :mod:`embedsearch.data.images`).
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"document kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "image" and not self.metadata.get("image_path"):
            raise ValueError(f"image document {self.id!r} has no metadata 'image_path'")

    def content_hash(self) -> str:
        """A stable digest of text and metadata (an image's metadata holds its bytes' sha256): an upsert of an
        unchanged document is a no-op."""
        parts = [self.text, self.metadata] if self.kind == "text" else [self.kind, self.text, self.metadata]
        payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


def document_from_record(record: dict[str, Any]) -> Document:
    """Turn a JSONL/CSV/HTTP record into a :class:`Document`.

    The id is ``_id`` or ``id``; the text is ``title`` and ``text`` joined by a blank line (the BEIR corpus
    layout works as is); every other field is metadata, and a ``metadata`` object is merged into it.
    Raises ``ValueError`` with a short reason for a missing id or an empty text.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    doc_id = next((record[f] for f in ID_FIELDS if record.get(f) not in (None, "")), None)
    if doc_id is None:
        raise ValueError("no '_id' or 'id' field")
    parts = [str(record[f]).strip() for f in TEXT_FIELDS if record.get(f) not in (None, "")]
    text = "\n\n".join(p for p in parts if p)
    if not text:
        raise ValueError(f"document {doc_id!r} has no text (fields 'title' and 'text' are empty or missing)")
    return Document(str(doc_id), text, _metadata_of(record))


def _metadata_of(record: dict[str, Any]) -> dict[str, Any]:
    skip = set(ID_FIELDS) | set(TEXT_FIELDS) | {"metadata"}
    metadata = {k: v for k, v in record.items() if k not in skip}
    nested = record.get("metadata")
    if isinstance(nested, dict):
        metadata.update(nested)
    elif nested is not None:
        metadata["metadata"] = nested
    return metadata
