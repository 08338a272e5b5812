"""Read request bodies: bounded in size, parsed as JSON objects of text (contract.py checks their fields)."""

from __future__ import annotations

import json
from typing import Any

import falcon

from superlinear.core import InvalidRequest

__all__ = ["read_json", "DEFAULT_MAX_BODY_BYTES"]

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
    try:
        data = stream.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - the server's own errors for malformed framing (bad chunks)
        raise falcon.HTTPBadRequest(title="invalid_body",
                                    description=f"the request body is malformed: {type(exc).__name__}") from None
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
    # An empty body may come without a type; any type given must be JSON (a form can send an empty body).
    if (data or req.content_type) and not _is_json(req.content_type):
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
    _refuse_lone_surrogates(body)
    return body


def _refuse_lone_surrogates(body: dict) -> None:
    """JSON may escape half of a UTF-16 pair ("\\ud800"), which is no text at all: refuse it by field."""
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
            for text in (key, child):
                if isinstance(text, str) and not text.isascii() and not _is_text(text):
                    raise InvalidRequest(f"{where!a} holds a lone UTF-16 surrogate, which is not text",
                                         param=ascii(where.split(".")[0].split("[")[0]).strip("'"))
            if isinstance(child, (dict, list)):
                stack.append((where, child))


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

