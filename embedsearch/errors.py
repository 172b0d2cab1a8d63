"""The one exception hierarchy of embedsearch.

Every error a user can cause is an :class:`EmbedsearchError`; its message is one line that names the bad value
and, where there is a fixed set, the valid ones. The CLI and the HTTP app each map these classes to exit codes
and status codes in one place.
"""

from __future__ import annotations


class EmbedsearchError(Exception):
    """Base class: an error the user can act on. ``str(err)`` is a complete one-line message."""


class InvalidInputError(EmbedsearchError):
    """A source file, query, spec or argument is malformed (HTTP 422, CLI exit 2)."""


class SourceError(InvalidInputError):
    """A document source has unreadable or malformed records; ``problems`` lists ``file:line: reason``."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class DimensionMismatchError(InvalidInputError):
    """A query vector whose length is not the index's dimension (HTTP 400)."""


class UnsupportedMediaError(InvalidInputError):
    """An upload that is not an image this server can read (HTTP 415)."""


class NotFoundError(EmbedsearchError):
    """An index, document or encoder does not exist (HTTP 404)."""


class UnknownIndexError(NotFoundError):
    """No index of that name in the home folder."""


class UnknownEncoderError(NotFoundError):
    """An encoder name that is not registered and is not a loadable model directory."""


class IndexExistsError(EmbedsearchError):
    """``build`` onto an existing index without ``overwrite`` (HTTP 409)."""


class EncoderMismatchError(EmbedsearchError):
    """An encoder whose weights fingerprint or dimension differs from the index's (CLI exit 1, HTTP 409). Over HTTP
    the encoder is always the index's own, so what a client can get wrong is a query vector's length: that is a
    :class:`DimensionMismatchError` (HTTP 400)."""


class UnsupportedModalityError(EmbedsearchError):
    """A query kind (text, image) that the index's encoder cannot embed (HTTP 400)."""


class UnsupportedModeError(EmbedsearchError):
    """A search mode the index cannot answer: lexical or hybrid on an index without a lexical side (an image
    index, or one built before the lexical side existed) (HTTP 400)."""


class IndexLockedError(EmbedsearchError):
    """Another writer holds the index and did not finish within the lock timeout (HTTP 409)."""


class CorruptIndexError(EmbedsearchError):
    """An index's files are missing, unreadable or do not match what was committed; the message names the index
    and the file (HTTP 503 for that index only: not the client's fault, and other indexes keep being served)."""


class TooLargeError(InvalidInputError):
    """A request exceeds a configured limit (k, body, image size) (HTTP 413)."""


class OutputExistsError(EmbedsearchError):
    """A command would replace an existing output (a trained model directory, a negatives file) without
    ``overwrite`` (HTTP 409, CLI exit 1)."""


class UnauthorizedError(EmbedsearchError):
    """A write without the right bearer token (HTTP 401)."""


class TrainingError(EmbedsearchError):
    """Training cannot go on: a non-finite loss, or a checkpoint that does not belong to this run."""
