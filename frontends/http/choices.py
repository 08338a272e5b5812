"""Chat completions with n > 1: n turns from one prefill, gathered or streamed as choices 0..n-1.

Choices stream one after the other (each is generated meanwhile on the engine thread); every chunk names
its choice's index. Usage counts the prompt once and the completion tokens of all choices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ...core import Usage
from .render import chunk_json, usage_chunk_json, usage_json
from .render_logprobs import chat_logprobs_json
from .streaming import KEEPALIVE, reported, sse_event, thinking_delta

__all__ = ["merge_choices", "choices_stream", "total_usage"]

log = logging.getLogger(__name__)


def total_usage(usages: Sequence[Usage]) -> Usage:
    """One prompt, several completions."""
    return Usage(prompt_tokens=usages[0].prompt_tokens, completion_tokens=sum(u.completion_tokens for u in usages),
                 reasoning_tokens=sum(u.reasoning_tokens for u in usages))


def merge_choices(done: Sequence[dict]) -> dict:
    """Merge n one-choice chat completions into one with choices 0..n-1 and the summed usage."""
    out = dict(done[0])
    out["choices"] = [{**d["choices"][0], "index": i} for i, d in enumerate(done)]
    usages = [Usage(d["usage"]["prompt_tokens"], d["usage"]["completion_tokens"], 0,
                    d["usage"]["completion_tokens_details"]["reasoning_tokens"]) for d in done]
    out["usage"] = usage_json(total_usage(usages))
    return out


def _one(items: Iterator, chunk, usages: list, stream_thinking: bool) -> Iterator[bytes]:
    """The SSE events of one choice (keep-alive comments while it waits); its usage goes to `usages`."""
    tokens: list = []
    calls = 0
    yield sse_event(chunk({"role": "assistant", "content": ""}, None))
    for kind, value in items:
        if kind == "idle":
            yield KEEPALIVE
            continue
        lp = chat_logprobs_json(tokens) if tokens and kind in ("content", "done") else None
        if kind == "logprobs":
            tokens.extend(value)
            continue
        if lp is not None:
            tokens.clear()
        if kind == "done":
            usages.append(value[1])
            yield sse_event(chunk({}, value[0], lp))
        elif kind == "tool_call":
            yield sse_event(chunk({"tool_calls": [{"index": calls, **value}]}, None))
            calls += 1
        elif kind == "content":
            yield sse_event(chunk({"content": value}, None, lp))
        else:
            yield sse_event(chunk(thinking_delta(value, stream_thinking), None))


def choices_stream(streams: Sequence[Iterator], cid: str, model: str, include_usage: bool,
                   stream_thinking: bool = False) -> Iterator[bytes]:
    """Yield the SSE bytes of n choices, then the summed usage when asked, then [DONE]."""
    created = int(time.time())
    usages: list[Usage] = []

    def events() -> Iterator[bytes]:
        for index, items in enumerate(streams):
            def chunk(delta: dict, finish: str | None, lp: Any = None, index: int = index) -> dict:
                out = chunk_json(cid, created, model, delta, finish, include_usage, lp)
                out["choices"][0]["index"] = index
                return out

            yield from _one(items, chunk, usages, stream_thinking)
        if include_usage:
            yield sse_event(usage_chunk_json(cid, created, model, total_usage(usages)))

    return reported(events(), streams, "a streamed turn with several choices")
