"""Map domain errors to OpenAI error objects and HTTP statuses."""

from __future__ import annotations

import logging

import falcon

from ...core import (
    Conflict,
    ContextLengthExceeded,
    InsufficientMemory,
    InvalidRequest,
    NotFound,
    SnapshotError,
    SuperlinearError,
)

__all__ = ["error_body", "install_error_handlers", "Unavailable"]

log = logging.getLogger(__name__)


class Unavailable(SuperlinearError):
    """The server is not ready (still loading, or the load failed)."""

    code = "unavailable"


_STATUS = [
    (ContextLengthExceeded, 400, "invalid_request_error"),
    (InvalidRequest, 400, "invalid_request_error"),
    (NotFound, 404, "not_found_error"),
    (Conflict, 409, "conflict_error"),
    (SnapshotError, 422, "invalid_request_error"),
    (InsufficientMemory, 503, "server_error"),
    (Unavailable, 503, "server_error"),
]


def error_body(message: str, etype: str, param: str | None = None, code: str | None = None) -> dict:
    """Return the four-key OpenAI error object."""
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def classify(exc: SuperlinearError) -> tuple[int, dict]:
    """Return the status and body for a domain error."""
    for kind, status, etype in _STATUS:
        if isinstance(exc, kind):
            return status, error_body(exc.message, etype, exc.param, exc.code)
    return 500, error_body(exc.message, "server_error", exc.param, exc.code)


def _domain(req, resp, exc, params):
    status, body = classify(exc)
    resp.status = status
    resp.media = body
    if status == 503:
        resp.set_header("Retry-After", "5")


def _http(req, resp, exc, params):
    resp.status = exc.status
    code = exc.title.lower().replace(" ", "_") if exc.title else None
    etype = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message = exc.description or exc.title or "error"
    resp.media = error_body(message, etype, None, code)
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def _unexpected(req, resp, exc, params):
    log.exception("unhandled error on %s %s", req.method, req.path)
    resp.status = 500
    resp.media = error_body("internal server error", "server_error", None, "internal_error")


def install_error_handlers(app: falcon.App) -> None:
    """Make every error, expected or not, an OpenAI error object."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http)
    app.add_error_handler(SuperlinearError, _domain)
