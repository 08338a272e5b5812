"""Token log-probabilities in the OpenAI shapes (response body classes): chat's `logprobs.content`, and
completions' lists."""

from __future__ import annotations

from collections.abc import Sequence

from superlinear.core import TokenLogprob

from .responses import ChatLogprobs, TextLogprobs, TokenLogprobs
from .responses import TokenLogprob as TokenBody

__all__ = ["chat_logprobs", "completion_logprobs", "FLOOR"]

# JSON has no -Infinity; a token the model gives no chance at all reports this floor, as vLLM does.
FLOOR = -9999.0


def _lp(value: float) -> float:
    return max(value, FLOOR)


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def chat_logprobs(entries: Sequence[TokenLogprob]) -> ChatLogprobs:
    """`choices[i].logprobs` of a chat completion (or chunk): one item per answer token."""
    content = [TokenLogprobs(token=e.token, logprob=_lp(e.logprob), bytes=_bytes(e.token),
                             top_logprobs=[TokenBody(token=t, logprob=_lp(lp), bytes=_bytes(t)) for t, lp in e.top])
               for e in entries]
    return ChatLogprobs(content=content, refusal=None)


def completion_logprobs(entries: Sequence[TokenLogprob], offset: int = 0) -> TextLogprobs:
    """`choices[i].logprobs` of a text completion: tokens, their logprobs, top alternatives, text offsets."""
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return TextLogprobs(tokens=[e.token for e in entries], token_logprobs=[_lp(e.logprob) for e in entries],
                        top_logprobs=[{t: _lp(lp) for t, lp in e.top} for e in entries], text_offset=offsets)
