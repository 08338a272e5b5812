"""POST /v1/completions: OpenAI text completions, JSON or server-sent events, on the engine's machinery."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from superlinear.core import Usage
from superlinear.core.completion import start_completion

from .body import read_json
from .chat import watched_turns
from .choices import total_usage
from .contract import UNSET, to_json
from .limits import Limits
from .metrics import Metrics
from .render import usage_body
from .render_logprobs import completion_logprobs
from .responses import Completion, CompletionChunk, TextChoice, TextChunkChoice, TextLogprobs
from .services import Get
from .streaming import KEEPALIVE, ClosingBody, reported, sse_body
from .wire_completions import CompletionCall, parse_completion_request

__all__ = ["Completions", "collect_completion", "completion_stream"]

log = logging.getLogger(__name__)


def _gather(items: Iterator[tuple[str, Any]], call: CompletionCall, index: int) -> tuple[TextChoice, Any]:
    """One choice from its wire items, and its usage."""
    text, tokens = [call.echo or ""], []
    finish, usage = "error", None
    for kind, value in items:
        if kind == "logprobs":
            tokens.extend(value)
        elif kind == "content":
            text.append(value)
        elif kind == "done":
            finish, usage = value
    logprobs = completion_logprobs(tokens, len(call.echo or "")) if call.logprobs else None
    return TextChoice(index=index, text="".join(text), logprobs=logprobs, finish_reason=finish), usage


def collect_completion(streams: Sequence[Iterator], call: CompletionCall, cid: str, model: str) -> Completion:
    """Gather each choice's wire items into one text completion (usage: the prompt once, every choice's
    completion tokens)."""
    done = [_gather(items, call, i) for i, items in enumerate(streams)]
    return Completion(id=cid, object="text_completion", created=int(time.time()), model=model,
                      choices=[c for c, _ in done], usage=usage_body(total_usage([u for _, u in done])))


@attrs.frozen
class _Chunks:
    """The chunks of a streamed text completion: they share id, created and model; with `include_usage`
    every chunk has `usage: null` and a last one has no choices and the usage."""

    cid: str
    created: int
    model: str
    include_usage: bool

    def __call__(self, index: int, text: str, logprobs: TextLogprobs | None, finish: str | None) -> bytes:
        choice = TextChunkChoice(index=index, text=text, logprobs=logprobs, finish_reason=finish)
        return sse_body(CompletionChunk(id=self.cid, object="text_completion", created=self.created,
                                        model=self.model, choices=[choice],
                                        usage=None if self.include_usage else UNSET))

    def usage(self, usage: Usage) -> bytes:
        return sse_body(CompletionChunk(id=self.cid, object="text_completion", created=self.created,
                                        model=self.model, choices=[], usage=usage_body(usage)))


def _events(items, call: CompletionCall, index: int, chunk: _Chunks, usages: list) -> Iterator[bytes]:
    offset, tokens = 0, []
    if call.echo:
        offset = len(call.echo)
        yield chunk(index, call.echo, None, None)
    for kind, value in items:
        if kind == "idle":
            yield KEEPALIVE
        elif kind == "logprobs":
            tokens.extend(value)
        elif kind in ("content", "done"):
            text, finish = (value, None) if kind == "content" else ("", value[0])
            lp = completion_logprobs(tokens, offset) if call.logprobs else None
            offset += len(text)
            tokens.clear()
            yield chunk(index, text, lp, finish)
            if kind == "done":
                usages.append(value[1])


def completion_stream(streams: Sequence[Iterator], call: CompletionCall, cid: str, model: str) -> Iterator[bytes]:
    """Yield the SSE bytes of a completion: each choice's text chunks (one with its finish reason), the
    optional usage, [DONE]. An error after the start goes out as `data: {"error": ...}`, then `[DONE]`."""
    chunk = _Chunks(cid, int(time.time()), model, call.include_usage)
    usages: list = []

    def events() -> Iterator[bytes]:
        for index, items in enumerate(streams):
            yield from _events(items, call, index, chunk, usages)
        if call.include_usage:
            yield chunk.usage(total_usage(usages))

    return reported(events(), streams, "a streamed completion")


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
        try:
            handles = start_completion(svc.sessions, call.request, call.n)
        except BaseException:
            self.metrics.turn(arrived, call.stream).end("rejected")
            raise
        streams = watched_turns(handles, req, self.metrics, arrived, call.stream, tools=False)
        cid = f"cmpl-{secrets.token_hex(12)}"
        if call.stream:
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = ClosingBody(completion_stream(streams, call, cid, svc.model_name), streams)
            return
        try:
            resp.media = to_json(collect_completion(streams, call, cid, svc.model_name))
        finally:
            for items in streams:
                items.close()
