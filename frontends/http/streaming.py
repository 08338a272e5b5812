"""Server-sent events for streamed chat completions, per API.md's streaming rules."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from .disconnect import ClientGone
from .errors import classify
from .render import chunk_json, usage_chunk_json
from .render_logprobs import chat_logprobs_json

__all__ = ["sse_stream", "sse_event", "DONE"]

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse_event(payload: object) -> bytes:
    """Frame one JSON payload as an SSE event."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _chunks(items: Iterator[tuple[str, Any]], chunk, usage_chunk, include_usage: bool) -> Iterator[bytes]:
    calls = 0
    # Token log-probabilities ride on the next content chunk (or the finishing one).
    tokens: list = []

    def lp():
        out = chat_logprobs_json(tokens) if tokens else None
        tokens.clear()
        return out

    for kind, value in items:
        if kind == "logprobs":
            tokens.extend(value)
        elif kind == "done":
            finish, usage = value
            yield sse_event(chunk({}, finish, include_usage, lp()))
            if include_usage:
                yield sse_event(usage_chunk(usage))
        elif kind == "tool_call":
            yield sse_event(chunk({"tool_calls": [{"index": calls, **value}]}, None, include_usage))
            calls += 1
        elif kind == "content":
            yield sse_event(chunk({"content": value}, None, include_usage, lp()))
        else:
            yield sse_event(chunk({"reasoning_content": value}, None, include_usage))


def sse_stream(items: Iterator[tuple[str, Any]], cid: str, model: str, include_usage: bool) -> Iterator[bytes]:
    """Yield the SSE bytes of a turn's wire items.

    Every chunk shares id, created and model; the first carries the role; exactly one carries the
    finish reason; with `include_usage` every chunk has `usage: null` and a last one has no choices
    and the usage. An error after the start goes out as `data: {"error": ...}`, then `[DONE]`.
    Closing the stream early (the server noticed the client left) closes `items`, which cancels the turn.
    """
    created = int(time.time())
    chunk = functools.partial(chunk_json, cid, created, model)
    usage_chunk = functools.partial(usage_chunk_json, cid, created, model)
    try:
        yield sse_event(chunk({"role": "assistant", "content": ""}, None, include_usage))
        yield from _chunks(items, chunk, usage_chunk, include_usage)
    except ClientGone:
        return
    except Exception as exc:  # noqa: BLE001 - the stream has started; report in-band
        status, body = classify(exc)
        if status >= 500 and body["error"]["code"] == "internal_error":
            log.exception("a streamed turn failed")
        yield sse_event(body)
    finally:
        items.close()
    yield DONE
