"""Chat completions with n > 1: n turns from one prefill, gathered or streamed as choices 0..n-1.

Choices stream one after the other (each is generated meanwhile on the engine thread); every chunk names
its choice's index. Usage counts the prompt once and the completion tokens of all choices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import attrs

from superlinear.core import Usage

from .render import ChunkMaker, chat_completion
from .render_logprobs import chat_logprobs
from .responses import ChatChoice, Delta
from .streaming import FIRST_DELTA, KEEPALIVE, reported, sse_body, thinking_delta, tool_call_delta

__all__ = ["merge_choices", "choices_stream", "total_usage"]

log = logging.getLogger(__name__)
_FINISH_DELTA = Delta()


def total_usage(usages: Sequence[Usage]) -> Usage:
    """One prompt, several completions."""
    return Usage(prompt_tokens=usages[0].prompt_tokens, completion_tokens=sum(u.completion_tokens for u in usages),
                 reasoning_tokens=sum(u.reasoning_tokens for u in usages))


def merge_choices(cid: str, model: str, done: Sequence[tuple[ChatChoice, Usage]]):
    """One chat completion of n gathered choices (numbered 0..n-1) with the summed usage."""
    choices = [attrs.evolve(choice, index=i) for i, (choice, _) in enumerate(done)]
    return chat_completion(cid, model, choices, total_usage([usage for _, usage in done]))


def _one(items: Iterator, chunk: ChunkMaker, usages: list, stream_thinking: bool) -> Iterator[bytes]:
    """The SSE events of one choice (keep-alive comments while it waits); its usage goes to `usages`."""
    tokens: list = []
    calls = 0
    yield sse_body(chunk(FIRST_DELTA))
    for kind, value in items:
        if kind == "idle":
            yield KEEPALIVE
            continue
        lp = chat_logprobs(tokens) if tokens and kind in ("content", "done") else None
        if kind == "logprobs":
            tokens.extend(value)
            continue
        if lp is not None:
            tokens.clear()
        if kind == "done":
            usages.append(value[1])
            yield sse_body(chunk(_FINISH_DELTA, value[0], lp))
        elif kind == "tool_call":
            yield sse_body(chunk(tool_call_delta(calls, value)))
            calls += 1
        elif kind == "content":
            yield sse_body(chunk(Delta(content=value), None, lp))
        else:
            yield sse_body(chunk(thinking_delta(value, stream_thinking)))


def choices_stream(streams: Sequence[Iterator], cid: str, model: str, include_usage: bool,
                   stream_thinking: bool = False) -> Iterator[bytes]:
    """Yield the SSE bytes of n choices, then the summed usage when asked, then [DONE]."""
    created = int(time.time())
    usages: list[Usage] = []

    def events() -> Iterator[bytes]:
        for index, items in enumerate(streams):
            yield from _one(items, ChunkMaker(cid, created, model, include_usage, index), usages, stream_thinking)
        if include_usage:
            yield sse_body(ChunkMaker(cid, created, model, include_usage).usage_chunk(total_usage(usages)))

    return reported(events(), streams, "a streamed turn with several choices")
