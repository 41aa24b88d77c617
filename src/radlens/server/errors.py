"""The one place that maps radlens errors to HTTP responses.

Every error answer is JSON ``{"error": <kind>, "detail": <one line>}``, except under
``/fhir``, where it is a FHIR ``OperationOutcome`` (``application/fhir+json``); routes raise
radlens errors (``NotFoundError``, ``AuthError``, ...) and never build error responses.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from radlens.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DicomWebError,
    ForbiddenError,
    InputError,
    ModelError,
    NotFoundError,
    RadlensError,
    TooLargeError,
    TooManyRequestsError,
    UnsupportedFormatError,
)
from radlens.report.fhir import FHIR_JSON, operation_outcome

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[RadlensError], int, str], ...] = (
    (UnsupportedFormatError, 415, ""),
    (TooLargeError, 413, ""),
    (InputError, 400, ""),
    (NotFoundError, 404, "not_found"),
    (ForbiddenError, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (ConflictError, 409, "conflict"),
    (TooManyRequestsError, 429, "too_many_requests"),
    (DicomWebError, 502, "pacs_unavailable"),
    (ModelError, 503, ""),
    (ConfigError, 500, ""),
)

# HTTP status -> FHIR IssueType (R4 valueset-issue-type) of the OperationOutcome.
_ISSUE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
    502: "transient",
}


def status_for(exc: RadlensError) -> int:
    """HTTP status of a radlens error."""
    return next((status for cls, status, _ in _STATUS if isinstance(exc, cls)), 500)


def _kind(exc: RadlensError) -> str:
    if isinstance(exc, InputError):
        return exc.kind
    return next((kind for cls, _, kind in _STATUS if kind and isinstance(exc, cls)), "") or (
        type(exc).__name__
    )


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RadlensError)
    detail = exc.reason if isinstance(exc, InputError) else str(exc)
    headers = {"WWW-Authenticate": 'Cookie realm="radlens"'} if isinstance(exc, AuthError) else {}
    if isinstance(exc, TooManyRequestsError):
        headers["Retry-After"] = str(exc.retry_after_s)
    status = status_for(exc)
    if request.url.path == "/fhir" or request.url.path.startswith("/fhir/"):
        return JSONResponse(
            operation_outcome(_ISSUE.get(status, "exception"), detail),
            status_code=status,
            headers=headers,
            media_type=FHIR_JSON,
        )
    return JSONResponse(
        {"error": _kind(exc), "detail": detail}, status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RadlensError, _handle)
