"""Map domain and HTTP errors to OpenAI error objects and statuses, for every route.

Every error answer is an `ErrorResponse` body class (responses.py), the schema /openapi.json gives every 4xx
and 5xx answer, sent as `to_json` of it."""

from __future__ import annotations

import logging
import re

import falcon

from superlinear.core import (
    Conflict,
    ContextLengthExceeded,
    InsufficientMemory,
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    SnapshotError,
    SuperlinearError,
    TurnCancelled,
)

from .contract import to_json
from .responses import ErrorObject, ErrorResponse

__all__ = ["error_response", "error_json", "classify", "install_error_handlers", "Unavailable", "RETRY_AFTER",
           "INTERNAL"]

log = logging.getLogger(__name__)

# Seconds a client should wait before retrying a 503 (loading, shutting down, out of memory).
RETRY_AFTER = "5"


class Unavailable(SuperlinearError):
    """The server is not ready (still loading, the load failed, or it is shutting down)."""

    code = "unavailable"


_STATUS = [
    (ContextLengthExceeded, 400, "invalid_request_error"),
    (InvalidRequest, 400, "invalid_request_error"),
    (NotFound, 404, "not_found_error"),
    (Conflict, 409, "conflict_error"),
    (SnapshotError, 422, "invalid_request_error"),
    (InsufficientMemory, 503, "server_error"),
    (InsufficientStorage, 507, "server_error"),
    (Unavailable, 503, "server_error"),
]

# Codes for Falcon's own errors, whose titles are status lines ("404 Not Found").
_HTTP_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def error_response(message: str, etype: str, param: str | None = None, code: str | None = None) -> ErrorResponse:
    """The OpenAI error object (message, type, param, code) as the body class every error answer is."""
    return ErrorResponse(error=ErrorObject(message=message, type=etype, param=param, code=code))


def error_json(message: str, etype: str, param: str | None = None, code: str | None = None) -> dict:
    """`error_response` as the JSON sent."""
    return to_json(error_response(message, etype, param, code))


INTERNAL = ErrorResponse(error=ErrorObject(message="internal server error", type="server_error", param=None,
                                           code="internal_error"))


def classify(exc: BaseException) -> tuple[int, ErrorResponse]:
    """Return the status and body for an error raised while serving (domain errors and cancellations)."""
    if isinstance(exc, TurnCancelled):
        return 503, error_response(str(exc) or "the turn was cancelled", "server_error", None, "cancelled")
    if not isinstance(exc, SuperlinearError):
        return 500, INTERNAL
    for kind, status, etype in _STATUS:
        if isinstance(exc, kind):
            return status, error_response(exc.message, etype, exc.param, exc.code)
    return 500, error_response(exc.message, "server_error", exc.param, exc.code)


def _domain(req, resp, exc, params):
    status, body = classify(exc)
    resp.status = status
    resp.media = to_json(body)
    if status == 503:
        resp.set_header("Retry-After", RETRY_AFTER)


def _http(req, resp, exc, params):
    resp.status = exc.status
    status = exc.status_code
    code = _HTTP_CODES.get(status)
    if exc.title and _CODE.match(exc.title):
        code = exc.title
    etype = "invalid_request_error" if status < 500 else "server_error"
    message = exc.description or (exc.title if exc.title else "error")
    if status == 404 and not exc.description:
        message = f"no route for {req.method} {req.path}"
    if status == 405 and not exc.description:
        message = f"{req.method} is not allowed on {req.path}"
    resp.media = error_json(message, etype, None, code)
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def _unexpected(req, resp, exc, params):
    log.exception("unhandled error on %s %s", req.method, req.path)
    resp.status = 500
    resp.media = to_json(INTERNAL)


def install_error_handlers(app: falcon.App) -> None:
    """Make every error, expected or not, an OpenAI error object (Falcon picks the most specific handler)."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http)
    app.add_error_handler(SuperlinearError, _domain)
    app.add_error_handler(TurnCancelled, _domain)
