"""Server-sent events for streamed chat completions, per API.md's streaming rules."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .disconnect import ClientGone
from .errors import classify
from .render import chunk_json, usage_chunk_json, usage_json
from .render_logprobs import chat_logprobs_json

__all__ = ["sse_stream", "reported", "sse_event", "thinking_delta", "SseBody", "ClosingBody", "DONE", "KEEPALIVE"]

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
# An SSE comment: every SSE client skips it, and its bytes keep read timeouts from firing.
KEEPALIVE = b": keep-alive\n\n"


def sse_event(payload: object) -> bytes:
    """Frame one JSON payload as an SSE event."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def thinking_delta(text: str, stream_thinking: bool) -> dict:
    """A thinking delta; `stream_thinking` (the published client's flag) repeats it as `delta.thinking`."""
    return {"reasoning_content": text, "thinking": text} if stream_thinking else {"reasoning_content": text}


def _chunks(items: Iterator[tuple[str, Any]], chunk, usage_chunk, include_usage: bool,
            stream_thinking: bool) -> Iterator[bytes]:
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
            final = chunk({}, finish, include_usage, lp())
            if include_usage:
                yield sse_event(final)
                yield sse_event(usage_chunk(usage))
            else:
                # The published superlinear client reads usage from the finish chunk; OpenAI clients
                # accept it there (the chunk's optional `usage`).
                yield sse_event({**final, "usage": usage_json(usage)})
        elif kind == "idle":
            yield KEEPALIVE
        elif kind == "tool_call":
            yield sse_event(chunk({"tool_calls": [{"index": calls, **value}]}, None, include_usage))
            calls += 1
        elif kind == "content":
            yield sse_event(chunk({"content": value}, None, include_usage, lp()))
        else:
            yield sse_event(chunk(thinking_delta(value, stream_thinking), None, include_usage))


def sse_stream(items: Iterator[tuple[str, Any]], cid: str, model: str, include_usage: bool,
               stream_thinking: bool = False) -> Iterator[bytes]:
    """Yield the SSE bytes of a turn's wire items.

    Every chunk shares id, created and model; the first carries the role; exactly one carries the
    finish reason; with `include_usage` every chunk has `usage: null` and a last one has no choices
    and the usage, without it the finish chunk carries the usage. `stream_thinking` (the published
    client's flag) repeats each thinking delta as `delta.thinking`. While nothing comes for a while (a
    long prefill) an SSE comment line keeps the connection busy. An error after the start goes out as
    `data: {"error": ...}`, then `[DONE]`.
    Closing the stream early (the server noticed the client left) closes `items`, which cancels the turn.
    """
    created = int(time.time())
    chunk = functools.partial(chunk_json, cid, created, model)
    usage_chunk = functools.partial(usage_chunk_json, cid, created, model)

    def events() -> Iterator[bytes]:
        yield sse_event(chunk({"role": "assistant", "content": ""}, None, include_usage))
        yield from _chunks(items, chunk, usage_chunk, include_usage, stream_thinking)

    return reported(events(), [items], "a streamed turn")


def reported(events: Iterator[bytes], streams: Sequence, what: str) -> Iterator[bytes]:
    """Yield a started stream's SSE bytes, then `[DONE]`; close every turn's `streams` at the end.

    An error after the start goes out in-band as `data: {"error": ...}` (then `[DONE]`); a client that
    left ends the stream without either.
    """
    try:
        yield from events
    except ClientGone:
        return
    except Exception as exc:  # noqa: BLE001 - the stream has started; report in-band
        status, body = classify(exc)
        if status >= 500 and body["error"]["code"] == "internal_error":
            log.exception("%s failed", what)
        yield sse_event(body)
    finally:
        for items in streams:
            items.close()
    yield DONE


class SseBody:
    """The response body of a streamed turn: `sse_stream` that closes `items` on close, even unstarted."""

    def __init__(self, items, cid: str, model: str, include_usage: bool, stream_thinking: bool = False):
        self._items = items
        self._events = sse_stream(items, cid, model, include_usage, stream_thinking)

    def __iter__(self) -> SseBody:
        return self

    def __next__(self) -> bytes:
        return next(self._events)

    def close(self) -> None:
        """Called by the server when the response ends or the client is gone; cancels a running turn."""
        self._events.close()
        self._items.close()


class ClosingBody:
    """A streamed response body over several turns' items (n choices): closing it closes every one of them,
    cancelling their turns, even before the first byte was asked for."""

    def __init__(self, events: Iterator[bytes], streams):
        self._events, self._streams = events, streams

    def __iter__(self) -> ClosingBody:
        return self

    def __next__(self) -> bytes:
        return next(self._events)

    def close(self) -> None:
        """Called by the server when the response ends or the client is gone."""
        self._events.close()
        for items in self._streams:
            items.close()
