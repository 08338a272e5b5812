"""POST /v1/completions: OpenAI text completions, JSON or server-sent events, on the engine's machinery."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import attrs

from ...core.completion import start_completion
from .body import read_json
from .chat import wire_items
from .disconnect import ClientGone, ClientWatch
from .errors import classify
from .limits import Limits
from .metrics import Metrics
from .render import usage_json
from .render_logprobs import completion_logprobs_json
from .services import Get
from .streaming import DONE, sse_event
from .wire_completions import CompletionCall, parse_completion_request

__all__ = ["Completions", "collect_completion", "completion_stream"]

log = logging.getLogger(__name__)


def _envelope(cid: str, created: int, model: str, choices: list, **extra: Any) -> dict:
    return {"id": cid, "object": "text_completion", "created": created, "model": model, "choices": choices,
            **extra}


def _choice(text: str, logprobs: dict | None, finish: str | None) -> dict:
    return {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}


def collect_completion(items: Iterator[tuple[str, Any]], call: CompletionCall, cid: str, model: str) -> dict:
    """Gather wire items into one text completion."""
    text, tokens = [call.echo or ""], []
    finish, usage = "error", None
    for kind, value in items:
        if kind == "logprobs":
            tokens.extend(value)
        elif kind == "content":
            text.append(value)
        elif kind == "done":
            finish, usage = value
    logprobs = completion_logprobs_json(tokens, len(call.echo or "")) if call.logprobs else None
    return _envelope(cid, int(time.time()), model, [_choice("".join(text), logprobs, finish)],
                     usage=usage_json(usage))


def _events(items, call: CompletionCall, chunk) -> Iterator[bytes]:
    offset, tokens = 0, []
    if call.echo:
        offset = len(call.echo)
        yield sse_event(chunk([_choice(call.echo, None, None)]))
    for kind, value in items:
        if kind == "logprobs":
            tokens.extend(value)
        elif kind in ("content", "done"):
            text, finish = (value, None) if kind == "content" else ("", value[0])
            lp = completion_logprobs_json(tokens, offset) if call.logprobs else None
            offset += len(text)
            tokens.clear()
            yield sse_event(chunk([_choice(text, lp, finish)]))
            if kind == "done" and call.include_usage:
                yield sse_event(chunk([], usage=usage_json(value[1])))


def completion_stream(items, call: CompletionCall, cid: str, model: str) -> Iterator[bytes]:
    """Yield the SSE bytes of a completion: text chunks, one with the finish reason, optional usage, [DONE].

    An error after the start goes out as `data: {"error": ...}`, then `[DONE]`, as for chat."""
    created = int(time.time())

    def chunk(choices: list, **extra: Any) -> dict:
        usage = {"usage": None} if call.include_usage else {}
        return _envelope(cid, created, model, choices, **{**usage, **extra})

    try:
        yield from _events(items, call, chunk)
    except ClientGone:
        return
    except Exception as exc:  # noqa: BLE001 - the stream has started; report in-band
        status, body = classify(exc)
        if status >= 500 and body["error"]["code"] == "internal_error":
            log.exception("a streamed completion failed")
        yield sse_event(body)
    finally:
        items.close()
    yield DONE


@attrs.define
class Completions:
    """The OpenAI (legacy) text completions endpoint: a prompt in, its continuation out."""

    get: Get
    metrics: Metrics
    limits: Limits

    def on_post(self, req, resp):
        arrived = time.perf_counter()
        svc = self.get()
        body = read_json(req, self.limits.max_body_bytes, required=True)
        call = parse_completion_request(body, svc.model_name, svc.sessions.tok, svc.sessions.model.info.vocab_size,
                                        svc.default_temperature)
        timer = self.metrics.turn(arrived, call.stream)
        try:
            handle = start_completion(svc.sessions, call.request)
        except BaseException:
            timer.end("rejected")
            raise
        timer.admitted()
        items = wire_items(handle, ClientWatch(req.env.get("gunicorn.socket")), timer, False)
        cid = f"cmpl-{secrets.token_hex(12)}"
        if call.stream:
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = completion_stream(items, call, cid, svc.model_name)
            return
        try:
            resp.media = collect_completion(items, call, cid, svc.model_name)
        finally:
            items.close()
