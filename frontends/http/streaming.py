"""Server-sent events for streamed chat completions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from ...core import SuperlinearError, TurnHandle
from .errors import classify, error_body
from .wire import chunk_json, usage_json

__all__ = ["sse_stream"]


def _event(payload: object) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def sse_stream(handle: TurnHandle, cid: str, model: str, include_usage: bool) -> Iterator[bytes]:
    """Yield the SSE byte stream of a turn; closing it early (a client that left) cancels the turn."""
    created = int(time.time())
    try:
        yield _event(chunk_json(cid, created, model, {"role": "assistant", "content": ""}, None, include_usage))
        for event in handle.events():
            if event.kind == "done":
                yield _event(chunk_json(cid, created, model, {}, event.finish_reason, include_usage))
                if include_usage:
                    last = chunk_json(cid, created, model, {}, None, False)
                    last["choices"], last["usage"] = [], usage_json(event.usage)
                    yield _event(last)
                continue
            key = "content" if event.kind == "content" else "reasoning_content"
            yield _event(chunk_json(cid, created, model, {key: event.text}, None, include_usage))
    except SuperlinearError as exc:
        yield _event(classify(exc)[1])
    except Exception as exc:  # noqa: BLE001 - the stream has started; report in-band
        yield _event(error_body(f"generation failed: {exc}", "server_error", None, "internal_error"))
    finally:
        handle.cancel()
    yield b"data: [DONE]\n\n"
