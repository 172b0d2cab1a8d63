"""Errors to JSON responses, one status per error type, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    UnauthorizedError,
    UnsupportedMediaError,
    UnsupportedModalityError,
    UnsupportedModeError,
)

# most specific first: the first class an error is an instance of decides its status
STATUS = (
    (UnauthorizedError, 401),
    (TooLargeError, 413),
    (UnsupportedMediaError, 415),
    (NotFoundError, 404),
    (UnsupportedModalityError, 400),
    (UnsupportedModeError, 400),
    (DimensionMismatchError, 400),
    (EncoderMismatchError, 409),
    (IndexExistsError, 409),
    (IndexLockedError, 409),
    (InvalidInputError, 422),
    (CorruptIndexError, 503),
    (EmbedsearchError, 400),
)


def status_of(error: EmbedsearchError) -> int:
    return next(status for kind, status in STATUS if isinstance(error, kind))


def error_response(error: EmbedsearchError) -> JSONResponse:
    body = {"error": {"type": type(error).__name__, "message": str(error)}}
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, UnauthorizedError) else None
    return JSONResponse(body, status_code=status_of(error), headers=headers)


def validation_response(error: RequestValidationError) -> JSONResponse:
    """FastAPI's body/parameter validation errors in the same shape as every other error (422)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg', 'invalid')}"
        for problem in error.errors()
    )
    message = problems.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate must not break JSON
    return JSONResponse({"error": {"type": "ValidationError", "message": message}}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, error: EmbedsearchError) -> JSONResponse:
        return error_response(error)

    async def handle_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return validation_response(error)

    async def handle_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        body = {"error": {"type": "HTTPError", "message": str(error.detail)}}
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    app.add_exception_handler(EmbedsearchError, handle)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
