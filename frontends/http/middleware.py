"""Falcon middleware: the API key, the body-size cap and request timing."""

from __future__ import annotations

import hmac
import time

import falcon

from .metrics import Metrics

__all__ = ["ApiKey", "BodyLimit", "RequestTimer", "OPEN_PATHS"]

# Paths served without the API key: liveness must be checkable by anything that can reach the port.
OPEN_PATHS = frozenset({"/health"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiKey:
    """Require `Authorization: Bearer <key>` on every route but /health."""

    def __init__(self, key: str):
        self._expected = key.encode()

    def process_request(self, req, resp):
        if req.path in OPEN_PATHS:
            return
        # The scheme is case-insensitive (RFC 9110 section 11.1); the key is compared in constant time.
        scheme, _, given = (req.get_header("Authorization") or "").strip().partition(" ")
        token = given.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token, self._expected):
            raise falcon.HTTPUnauthorized(title="invalid_api_key", description="a valid API key is required",
                                          challenges=["Bearer"])


class BodyLimit:
    """Refuse a declared body over the limit before anything reads it (chunked bodies are capped on read)."""

    def __init__(self, limit: int):
        self._limit = limit

    def process_request(self, req, resp):
        if req.content_length and req.content_length > self._limit:
            raise falcon.HTTPContentTooLarge(description=f"request bodies are limited to {self._limit} bytes")


class RequestTimer:
    """Observe every request's time to response headers, by method, route template and status."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, "started", None)
        if started is None:
            return
        # Labels come from bounded sets only (route templates, known methods), whatever clients send.
        route = req.uri_template or "unmatched"
        method = req.method if req.method in _METHODS else "OTHER"
        self._metrics.http.labels(method, route, str(resp.status_code)).observe(time.perf_counter() - started)
