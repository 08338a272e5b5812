"""Read request bodies: bounded in size, parsed as JSON, checked against the fields a route knows."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import falcon

from ...core import InvalidRequest

__all__ = ["read_json", "reject_unknown", "DEFAULT_MAX_BODY_BYTES"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def _too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(description=f"request bodies are limited to {limit} bytes")


def _raw(req: falcon.Request, limit: int) -> bytes:
    """Read at most `limit` bytes; a declared or actual body over the limit is a 413."""
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    if req.content_length is None and req.env.get("wsgi.input_terminated"):
        # A chunked body: the server (gunicorn) ends the stream at the body's end, so reading is safe.
        stream = req.stream
    else:
        stream = req.bounded_stream
    # Read one byte past the limit to tell a body that is exactly at the limit from one that is over.
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def read_json(req: falcon.Request, limit: int = DEFAULT_MAX_BODY_BYTES, *, required: bool = False) -> dict:
    """Return the body as a JSON object; an empty body is `{}` unless `required`.

    A body must say it is JSON: a web page can send any other type cross-site without asking first.
    """
    data = _raw(req, limit)
    if data and not _is_json(req.content_type):
        raise falcon.HTTPUnsupportedMediaType(
            description=f"the body must be JSON with Content-Type: application/json (got {req.content_type!r})")
    # Only a missing body means "no fields"; whitespace is a body, and not valid JSON.
    if not data:
        if required:
            raise InvalidRequest("the request needs a JSON object body", param="body")
        return {}
    try:
        body: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert.
        raise falcon.HTTPBadRequest(title="invalid_json", description=f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", param="body")
    return body


def reject_unknown(body: dict, known: Collection[str]) -> None:
    """Refuse fields a route does not understand instead of silently ignoring them."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidRequest(f"unrecognized field {unknown[0]!r} (known: {', '.join(sorted(known))})",
                             param=unknown[0])
