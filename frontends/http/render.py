"""Render core values as the response body classes (responses.py): chat completions, their stream chunks and
usage (session and snapshot answers: render_sessions.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs

from superlinear.core import Usage

from . import responses as r
from .contract import UNSET

__all__ = ["usage_body", "chat_completion", "ChunkMaker", "made_call"]


def usage_body(usage: Usage) -> r.Usage:
    """Usage with the OpenAI detail objects."""
    return r.Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                   total_tokens=usage.total_tokens,
                   prompt_tokens_details=r.PromptDetails(cached_tokens=usage.cached_tokens),
                   completion_tokens_details=r.CompletionDetails(reasoning_tokens=usage.reasoning_tokens))


def made_call(call: dict) -> r.MadeToolCall:
    """A tool call split out of the answer (toolcalls.py) as the message's tool call."""
    return r.MadeToolCall(id=call["id"], type=call["type"], function=r.CalledFunction(**call["function"]))


def chat_completion(cid: str, model: str, choices: Sequence[r.ChatChoice], usage: Usage) -> r.ChatCompletion:
    """A whole chat completion: its choices, and the usage of all of them."""
    return r.ChatCompletion(id=cid, object="chat.completion", created=int(time.time()), model=model,
                            choices=list(choices), usage=usage_body(usage))


@attrs.frozen
class ChunkMaker:
    """The chunks of one streamed chat choice: they share id, created and model; with `include_usage`
    every chunk has `usage: null` (a last one, `usage_chunk`, has no choices and the usage)."""

    cid: str
    created: int
    model: str
    include_usage: bool
    index: int = 0

    def __call__(self, delta: r.Delta, finish: str | None = None, logprobs: r.ChatLogprobs | None = None,
                 usage: Usage | None = None) -> r.ChatCompletionChunk:
        """A chunk with this choice's `delta` (and `usage`, when given, on it)."""
        choice = r.ChunkChoice(index=self.index, delta=delta, logprobs=logprobs, finish_reason=finish)
        return r.ChatCompletionChunk(id=self.cid, object="chat.completion.chunk", created=self.created,
                                     model=self.model, choices=[choice], usage=self._usage(usage))

    def usage_chunk(self, usage: Usage) -> r.ChatCompletionChunk:
        """The last chunk of an `include_usage` stream: no choices, the turn's usage."""
        return r.ChatCompletionChunk(id=self.cid, object="chat.completion.chunk", created=self.created,
                                     model=self.model, choices=[], usage=usage_body(usage))

    def _usage(self, usage: Usage | None) -> Any:
        if usage is not None:
            return usage_body(usage)
        return None if self.include_usage else UNSET
