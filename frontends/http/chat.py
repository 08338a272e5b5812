"""POST /v1/chat/completions: parse, admit, then stream SSE or gather one JSON completion."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import attrs

from superlinear.core import TurnHandle
from superlinear.core.choices import start_choices

from .body import read_json
from .choices import choices_stream, merge_choices
from .contract import to_json
from .disconnect import IDLE, ClientGone, ClientWatch, watched_events
from .errors import error_json
from .limits import Limits
from .metrics import Metrics, TurnTimer
from .render import chat_completion, made_call
from .render_logprobs import chat_logprobs
from .responses import AssistantMessage, ChatChoice
from .services import Get
from .streaming import ClosingBody, SseBody
from .toolcalls import ToolCallSplitter
from .wire import ChatCall, parse_chat_request

__all__ = ["ChatCompletions", "TurnItems", "watched_turns", "wire_items", "collect", "client_gone_handler"]


class TurnItems:
    """A turn's wire items that cancel the turn when closed, even before the first item was asked for.

    A generator closed before it started runs none of its code, so a client that left before the first
    chunk went out (the server closes the response body at once) would leave the turn running.
    """

    def __init__(self, handle: TurnHandle, watch: ClientWatch, timer: TurnTimer, tools: bool, fmt: str = "json"):
        self._handle, self._timer = handle, timer
        self._items = wire_items(handle, watch, timer, tools, fmt)

    def __iter__(self) -> TurnItems:
        return self

    def __next__(self) -> tuple[str, Any]:
        return next(self._items)

    def close(self) -> None:
        """Stop reading: cancel the turn if it still runs (a no-op for a finished one)."""
        self._items.close()
        self._handle.cancel()
        self._timer.end("disconnected")


def wire_items(handle: TurnHandle, watch: ClientWatch, timer: TurnTimer, tools: bool,
               fmt: str = "json") -> Iterator[tuple[str, Any]]:
    """Turn a turn's events into wire items: ("reasoning"|"content", text), ("tool_call", call), ("done", ...),
    and ("idle", None) while nothing came for a while (a long prefill).

    Tool-call blocks are split out of the answer when the request gave tools; a turn that called a tool
    and stopped finishes with "tool_calls"; `fmt` is the chat template's tool-call format. Closing this
    generator cancels the turn if it still runs.
    """
    splitter = ToolCallSplitter(fmt) if tools else None
    reason = "error"
    first = True
    try:
        for event in watched_events(handle, watch):
            if event is IDLE:
                yield "idle", None
                continue
            if first:
                timer.engine_started(handle.queue_seconds)
                first = False
            if event.kind != "done":
                timer.text()
                if event.logprobs:
                    yield "logprobs", event.logprobs
                if event.kind == "reasoning":
                    yield "reasoning", event.text
                else:
                    yield from splitter.feed(event.text) if splitter else [("content", event.text)]
                continue
            if splitter:
                yield from splitter.finish()
            reason = event.finish_reason
            if splitter and splitter.calls and reason == "stop":
                reason = "tool_calls"
            timer.end(reason, event.usage)
            yield "done", (reason, event.usage)
    except (ClientGone, GeneratorExit):
        reason = "disconnected"
        raise
    finally:
        # A no-op for a finished turn; stops one whose reader went away.
        handle.cancel()
        timer.end(reason)


def collect(items: Iterator[tuple[str, Any]], logprobs: bool = False) -> tuple[ChatChoice, Any]:
    """Gather wire items into one chat choice and its usage (with `logprobs`, the answer tokens'
    log-probabilities)."""
    content, reasoning, calls, tokens = [], [], [], []
    finish, usage = "error", None
    for kind, value in items:
        if kind == "logprobs":
            tokens.extend(value)
        elif kind == "content":
            content.append(value)
        elif kind == "reasoning":
            reasoning.append(value)
        elif kind == "tool_call":
            calls.append(made_call(value))
        elif kind == "done":
            finish, usage = value
    text = "".join(content)
    message = AssistantMessage(role="assistant", content=text if text or not calls else None,
                               reasoning_content="".join(reasoning) if reasoning else None,
                               tool_calls=calls or None)
    return ChatChoice(index=0, message=message, logprobs=chat_logprobs(tokens) if logprobs else None,
                      finish_reason=finish), usage


def watched_turns(handles, req, metrics: Metrics, arrived: float, stream: bool, tools: bool,
                  fmt: str = "json") -> list[TurnItems]:
    """Wrap admitted turns (one per choice) as TurnItems that watch the request's client, each counted as a
    turn in the metrics; if the client already left, cancel them all and raise ClientGone."""
    watch = ClientWatch(req.env.get("gunicorn.socket"))
    streams = []
    for handle in handles:
        timer = metrics.turn(arrived, stream)
        timer.admitted()
        streams.append(TurnItems(handle, watch, timer, tools, fmt))
    if watch.gone():
        for items in streams:
            items.close()
        raise ClientGone("the client closed the connection")
    return streams


@attrs.define
class ChatCompletions:
    """The OpenAI chat completions endpoint with superlinear's extensions."""

    get: Get
    metrics: Metrics
    limits: Limits

    def on_post(self, req, resp):
        arrived = time.perf_counter()
        svc = self.get()
        body = read_json(req, self.limits.max_body_bytes, required=True)
        fmt = getattr(svc.sessions.tok, "tool_call_format", "json")
        call = parse_chat_request(body, svc.model_name, svc.default_max_tokens, svc.default_temperature, fmt)
        if call.n > 1:
            self._several(req, resp, call, svc, arrived, fmt)
            return
        timer = self.metrics.turn(arrived, call.stream)
        try:
            handle = svc.sessions.chat(call.request)
        except BaseException:
            timer.end("rejected")
            raise
        timer.admitted()
        watch = ClientWatch(req.env.get("gunicorn.socket"))
        items = TurnItems(handle, watch, timer, call.parse_tool_calls, fmt)
        if watch.gone():
            # The client left while the request was read or admitted: nothing may land in its session.
            items.close()
            raise ClientGone("the client closed the connection")
        self._respond(resp, call, items, svc.model_name)

    def _several(self, req, resp, call: ChatCall, svc, arrived: float, fmt: str) -> None:
        """n > 1: one prefill, n choices; each counts as a turn in the metrics."""
        try:
            handles = start_choices(svc.sessions, call.request, call.n)
        except BaseException:
            self.metrics.turn(arrived, call.stream).end("rejected")
            raise
        streams = watched_turns(handles, req, self.metrics, arrived, call.stream, call.parse_tool_calls, fmt)
        cid = f"chatcmpl-{secrets.token_hex(12)}"
        if call.stream:
            _sse_headers(resp)
            events = choices_stream(streams, cid, svc.model_name, call.include_usage, call.stream_thinking)
            resp.stream = ClosingBody(events, streams)
            return
        try:
            logprobs = call.request.sampling.logprobs is not None
            resp.media = to_json(merge_choices(cid, svc.model_name, [collect(items, logprobs) for items in streams]))
        finally:
            for items in streams:
                items.close()

    @staticmethod
    def _respond(resp, call: ChatCall, items, model: str) -> None:
        cid = f"chatcmpl-{secrets.token_hex(12)}"
        if call.stream:
            _sse_headers(resp)
            resp.stream = SseBody(items, cid, model, call.include_usage, call.stream_thinking)
            return
        try:
            choice, usage = collect(items, call.request.sampling.logprobs is not None)
            resp.media = to_json(chat_completion(cid, model, [choice], usage))
        finally:
            items.close()


def _sse_headers(resp) -> None:
    resp.content_type = "text/event-stream"
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("X-Accel-Buffering", "no")


def client_gone_handler(req, resp, exc, params):
    """A client that left gets nothing useful; answer 499 (nginx's convention) for the access log."""
    resp.status = "499 Client Closed Request"
    resp.media = error_json(str(exc), "invalid_request_error", None, "client_closed_request")
