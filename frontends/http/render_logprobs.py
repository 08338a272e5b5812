"""Render token log-probabilities in the OpenAI shapes: chat's `logprobs.content`, and completions' lists."""

from __future__ import annotations

from collections.abc import Sequence

from ...core import TokenLogprob

__all__ = ["chat_logprobs_json", "completion_logprobs_json", "FLOOR"]

# JSON has no -Infinity; a token the model gives no chance at all reports this floor, as vLLM does.
FLOOR = -9999.0


def _lp(value: float) -> float:
    return max(value, FLOOR)


def _token(text: str, logprob: float) -> dict:
    return {"token": text, "logprob": _lp(logprob), "bytes": list(text.encode("utf-8"))}


def chat_logprobs_json(entries: Sequence[TokenLogprob]) -> dict:
    """`choices[i].logprobs` of a chat completion (or chunk): one item per answer token."""
    content = [{**_token(e.token, e.logprob), "top_logprobs": [_token(t, lp) for t, lp in e.top]}
               for e in entries]
    return {"content": content, "refusal": None}


def completion_logprobs_json(entries: Sequence[TokenLogprob], offset: int = 0) -> dict:
    """`choices[i].logprobs` of a text completion: tokens, their logprobs, top alternatives, text offsets."""
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [_lp(e.logprob) for e in entries],
        "top_logprobs": [{t: _lp(lp) for t, lp in e.top} for e in entries],
        "text_offset": offsets,
    }
