"""Errors to JSON responses, one status per error type, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from embedsearch.errors import (
    CorruptIndexError,
    DimensionMismatchError,
    EmbedsearchError,
    EncoderMismatchError,
    IndexExistsError,
    IndexLockedError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnsupportedModalityError,
)


class UnsupportedMediaError(InvalidInputError):
    """An upload that is not an image this server can read (HTTP 415)."""


class UnauthorizedError(EmbedsearchError):
    """A write without the right bearer token (HTTP 401)."""


# most specific first: the first class an error is an instance of decides its status
STATUS = (
    (UnauthorizedError, 401),
    (TooLargeError, 413),
    (UnsupportedMediaError, 415),
    (NotFoundError, 404),
    (UnsupportedModalityError, 400),
    (DimensionMismatchError, 400),
    (EncoderMismatchError, 409),
    (IndexExistsError, 409),
    (IndexLockedError, 409),
    (InvalidInputError, 422),
    (CorruptIndexError, 500),
    (EmbedsearchError, 400),
)


def status_of(error: EmbedsearchError) -> int:
    return next(status for kind, status in STATUS if isinstance(error, kind))


def error_response(error: EmbedsearchError) -> JSONResponse:
    body = {"error": {"type": type(error).__name__, "message": str(error)}}
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, UnauthorizedError) else None
    return JSONResponse(body, status_code=status_of(error), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, error: EmbedsearchError) -> JSONResponse:
        return error_response(error)

    app.add_exception_handler(EmbedsearchError, handle)
