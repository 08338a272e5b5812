"""Server-sent events for streamed chat completions, per API.md's streaming rules."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .contract import to_json
from .disconnect import ClientGone
from .errors import classify
from .render import ChunkMaker, made_call
from .render_logprobs import chat_logprobs
from .responses import Delta, ToolCallDelta

__all__ = ["sse_stream", "reported", "sse_event", "sse_body", "thinking_delta", "tool_call_delta", "SseBody",
           "ClosingBody", "DONE", "KEEPALIVE", "FIRST_DELTA"]

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
# An SSE comment: every SSE client skips it, and its bytes keep read timeouts from firing.
KEEPALIVE = b": keep-alive\n\n"


# The first chunk of every chat choice carries the role.
FIRST_DELTA = Delta(role="assistant", content="")
_FINISH_DELTA = Delta()


# One encoder for every event (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def sse_event(payload: object) -> bytes:
    """Frame one JSON payload as an SSE event."""
    return f"data: {_ENCODER.encode(payload)}\n\n".encode()


def sse_body(value: object) -> bytes:
    """Frame one response body class instance (a chunk) as an SSE event."""
    return sse_event(to_json(value))


def thinking_delta(text: str, stream_thinking: bool) -> Delta:
    """A thinking delta; `stream_thinking` (the published client's flag) repeats it as `delta.thinking`."""
    return Delta(reasoning_content=text, thinking=text if stream_thinking else None)


def tool_call_delta(index: int, call: dict) -> Delta:
    """The delta of the `index`th tool call of a choice (whole: calls are split out complete)."""
    made = made_call(call)
    return Delta(tool_calls=[ToolCallDelta(index=index, id=made.id, type=made.type, function=made.function)])


def _chunks(items: Iterator[tuple[str, Any]], chunk: ChunkMaker, stream_thinking: bool) -> Iterator[bytes]:
    calls = 0
    # Token log-probabilities ride on the next content chunk (or the finishing one).
    tokens: list = []

    def lp():
        out = chat_logprobs(tokens) if tokens else None
        tokens.clear()
        return out

    for kind, value in items:
        if kind == "content":
            yield sse_body(chunk(Delta(content=value), None, lp()))
        elif kind == "logprobs":
            tokens.extend(value)
        elif kind == "done":
            finish, usage = value
            if chunk.include_usage:
                yield sse_body(chunk(_FINISH_DELTA, finish, lp()))
                yield sse_body(chunk.usage_chunk(usage))
            else:
                # The published superlinear client reads usage from the finish chunk; OpenAI clients
                # accept it there (the chunk's optional `usage`).
                yield sse_body(chunk(_FINISH_DELTA, finish, lp(), usage))
        elif kind == "idle":
            yield KEEPALIVE
        elif kind == "tool_call":
            yield sse_body(chunk(tool_call_delta(calls, value)))
            calls += 1
        else:
            yield sse_body(chunk(thinking_delta(value, stream_thinking)))


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
    chunk = ChunkMaker(cid, int(time.time()), model, include_usage)

    def events() -> Iterator[bytes]:
        yield sse_body(chunk(FIRST_DELTA))
        yield from _chunks(items, chunk, stream_thinking)

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
        if status >= 500 and body.error.code == "internal_error":
            log.exception("%s failed", what)
        yield sse_body(body)
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
