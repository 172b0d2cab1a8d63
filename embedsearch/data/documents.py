"""The document record every source is turned into, and the checks every record passes.

Input is hostile until checked: a record is refused (``ValueError`` with a short reason) when its text is over
:data:`MAX_DOCUMENT_BYTES`, when its metadata nests deeper than :data:`MAX_NESTING` or holds a number that JSON
cannot carry (NaN, infinity), or when any string in it is not valid Unicode (a lone surrogate from a ``\\ud800``
escape), because such a value could be stored but never read back.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

ID_FIELDS = ("_id", "id")
TEXT_FIELDS = ("title", "text")
KINDS = ("text", "image")
MAX_DOCUMENT_BYTES = 2**20  # text of one document, UTF-8: about 250,000 tokens, 1,000 chunks of MiniLM
MAX_ID_CHARS = 1024
MAX_NESTING = 32  # levels of lists and objects in a record's metadata


class RecordTooLarge(ValueError):
    """A record over a size limit (HTTP 413 rather than 422)."""


@dataclass(frozen=True)
class Document:
    """One searchable document: a unique ``id``, the ``text`` that is embedded, and free-form ``metadata``.

    A document of ``kind == "image"`` is embedded from the image file at ``source`` instead (a path that is not
    stored: the index keeps a thumbnail); its ``text`` is only the snippet a hit shows (its relative path, see
    :mod:`embedsearch.data.images`).
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "text"
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"document kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "image" and not self.source:
            raise ValueError(f"image document {self.id!r} has no source file")

    def content_hash(self) -> str:
        """A stable digest of text and metadata (an image's metadata holds its bytes' sha256): an upsert of an
        unchanged document is a no-op."""
        parts = [self.text, self.metadata] if self.kind == "text" else [self.kind, self.text, self.metadata]
        payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


def document_from_record(record: Any) -> Document:
    """Turn a JSONL/CSV/HTTP record into a :class:`Document`.

    The id is ``_id`` or ``id``; the text is ``title`` and ``text`` joined by a blank line (the BEIR corpus
    layout works as is); every other field is metadata, and a ``metadata`` object is merged into it.
    Raises ``ValueError`` with a short reason for a missing id, an empty text or a value that fails the checks
    above (:class:`RecordTooLarge` for a text over the limit).
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    doc_id = next((record[f] for f in ID_FIELDS if record.get(f) not in (None, "")), None)
    if doc_id is None:
        raise ValueError("no '_id' or 'id' field")
    if isinstance(doc_id, dict | list) or isinstance(doc_id, float) and not math.isfinite(doc_id):
        raise ValueError(f"the id must be a string or a number, got {type(doc_id).__name__}")
    doc_id = check_text(str(doc_id), "the id")
    if len(doc_id) > MAX_ID_CHARS:
        raise RecordTooLarge(f"an id of {len(doc_id)} characters is over the limit of {MAX_ID_CHARS}")
    parts = [str(record[f]).strip() for f in TEXT_FIELDS if record.get(f) not in (None, "")]
    text = check_text("\n\n".join(p for p in parts if p), f"the text of {doc_id!r}")
    if not text:
        raise ValueError(f"document {doc_id!r} has no text (fields 'title' and 'text' are empty or missing)")
    check_size(text, doc_id)
    metadata = _metadata_of(record)
    check_value(metadata, f"the metadata of {doc_id!r}")
    return Document(doc_id, text, metadata)


def check_size(text: str, doc_id: str) -> None:
    """:class:`RecordTooLarge` for a text over :data:`MAX_DOCUMENT_BYTES` (UTF-8)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        raise RecordTooLarge(
            f"document {doc_id!r} has {size:,} bytes of text, over the limit of {MAX_DOCUMENT_BYTES:,}; split it "
            "into several documents"
        )


def check_text(value: str, what: str) -> str:
    """``value`` if it is valid Unicode (encodable as UTF-8), else ``ValueError`` naming ``what``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start : err.end].encode("unicode_escape").decode("ascii")
        raise ValueError(f"{what} holds a lone surrogate ({bad}) at character {err.start}: not valid Unicode") from None
    return value


def check_value(value: Any, what: str, depth: int = 0) -> None:
    """``ValueError`` if a JSON-like value nests too deeply, holds a non-finite number or invalid Unicode."""
    if depth > MAX_NESTING:
        raise ValueError(f"{what} nests deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} holds the number {value!r}, which JSON cannot carry; use null or a string")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), f"a key of {what}")
            check_value(item, what, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_value(item, what, depth + 1)


def _metadata_of(record: dict[str, Any]) -> dict[str, Any]:
    skip = set(ID_FIELDS) | set(TEXT_FIELDS) | {"metadata"}
    metadata = {k: v for k, v in record.items() if k not in skip}
    nested = record.get("metadata")
    if isinstance(nested, dict):
        metadata.update(nested)
    elif nested is not None:
        metadata["metadata"] = nested
    return metadata


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN, Infinity and numbers too large for a float (``ValueError``), and nesting
    deep enough to exhaust Python's stack."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply (more than {MAX_NESTING} levels are refused anyway)") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the number {name} is not valid JSON; use null or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large for a float")
    return value
