"""Checks of a search request, made before anything is encoded: they bound the work one request can cause.

``k`` up to :data:`MAX_K`; a query text up to :data:`MAX_QUERY_CHARS` characters (refused before it is
tokenised); ``where`` up to :data:`MAX_WHERE_KEYS` keys of scalar values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from embedsearch.data.documents import check_text
from embedsearch.errors import InvalidInputError, TooLargeError, UnsupportedModalityError

MAX_K = 10_000
MAX_QUERY_CHARS = 8_192  # about 2,000 tokens: MiniLM reads 256 of them, CLIP 77
MAX_WHERE_KEYS = 32
MAX_WHERE_CHARS = 4_096  # of one key or value


def check_request(k: Any, where: dict[str, Any] | None) -> None:
    """:class:`InvalidInputError` / :class:`TooLargeError` for a ``k`` or a ``where`` out of bounds."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be an integer of at least 1, got {k!r}")
    if k > MAX_K:
        raise TooLargeError(f"k={k} is over the limit of {MAX_K}")
    if where is None:
        return
    if not isinstance(where, dict):
        raise InvalidInputError(f"where must be an object of key: value, got {type(where).__name__}")
    if len(where) > MAX_WHERE_KEYS:
        raise TooLargeError(f"where has {len(where)} keys, over the limit of {MAX_WHERE_KEYS}")
    for key, value in where.items():
        _check_where_item(key, value)


def _check_where_item(key: Any, value: Any) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"a where key must be a non-empty string, got {key!r}")
    if not isinstance(value, str | int | float | bool):
        raise InvalidInputError(f"where {key!r}: the value must be a string, number or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"where {key!r}: {value!r} is not a number JSON can carry")
    for text, what in ((key, "a where key"), (value, f"the where value of {key!r}")):
        if isinstance(text, str):
            if len(text) > MAX_WHERE_CHARS:
                raise TooLargeError(f"{what} has {len(text)} characters, over the limit of {MAX_WHERE_CHARS}")
            valid_text(text, what)


def check_query_texts(texts: Sequence[Any]) -> None:
    """:class:`InvalidInputError` for an empty or invalid query text, :class:`TooLargeError` for a long one,
    checked before anything is tokenised."""
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("a query text is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise TooLargeError(f"a query of {len(text):,} characters is over the limit of {MAX_QUERY_CHARS:,}")
        valid_text(text, "the query")


def valid_text(text: str, what: str) -> None:
    try:
        check_text(text, what)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None


def require_query_kind(manifest: dict[str, Any], kind: str) -> None:
    """Raise :class:`UnsupportedModalityError` unless the encoder of the index ``manifest`` describes embeds ``kind``
    (``"text"`` or ``"image"``) queries."""
    encoder = manifest["encoder"]
    towers = encoder.get("modalities", ["text"])
    if kind not in towers:
        raise UnsupportedModalityError(
            f"index {manifest['name']!r} cannot answer {kind} queries: its encoder {encoder['name']!r} embeds "
            f"only {' and '.join(sorted(towers))}"
        )
