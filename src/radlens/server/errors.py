"""The one place that maps radlens errors to HTTP responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from radlens.errors import (
    ConfigError,
    InputError,
    ModelError,
    RadlensError,
    UnsupportedFormatError,
)


def status_for(exc: RadlensError) -> int:
    """HTTP status of a radlens error."""
    if isinstance(exc, UnsupportedFormatError):
        return 415
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, ModelError):
        return 503
    if isinstance(exc, ConfigError):
        return 500
    return 500


def _kind(exc: RadlensError) -> str:
    return exc.kind if isinstance(exc, InputError) else type(exc).__name__


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RadlensError)
    detail = exc.reason if isinstance(exc, InputError) else str(exc)
    return JSONResponse({"error": _kind(exc), "detail": detail}, status_code=status_for(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RadlensError, _handle)
