"""Parse the logit fields of OpenAI requests: `logit_bias`, and `logprobs` / `top_logprobs`."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.logprobs import MAX_TOP_LOGPROBS
from .wire_messages import require

__all__ = ["parse_logit_bias", "parse_chat_logprobs", "MAX_LOGIT_BIAS"]

MAX_LOGIT_BIAS = 1024


def _token_key(key: str) -> int | None:
    return int(key) if key.isascii() and key.isdigit() and len(key) <= 9 else None


def parse_logit_bias(body: Mapping) -> tuple[tuple[int, float], ...]:
    """`{"token id": bias}` with biases in [-100, 100] -> sorted (id, bias) pairs; ids are checked
    against the vocabulary when the turn is prepared."""
    raw = body.get("logit_bias")
    if raw is None:
        return ()
    require(isinstance(raw, dict) and len(raw) <= MAX_LOGIT_BIAS,
            f"logit_bias must be an object of at most {MAX_LOGIT_BIAS} token ids", "logit_bias")
    out = []
    for key, bias in raw.items():
        tid = _token_key(key)
        require(tid is not None, f"logit_bias key {key[:40]!r} is not a token id (a non-negative integer)",
                "logit_bias")
        ok = isinstance(bias, (int, float)) and not isinstance(bias, bool) and -100 <= bias <= 100
        require(ok, f"logit_bias[{key}] must be a number between -100 and 100", "logit_bias")
        out.append((tid, float(bias)))
    return tuple(sorted(out))


def parse_chat_logprobs(body: Mapping) -> int | None:
    """`logprobs: true` (with `top_logprobs` 0-20) -> the number of alternatives; None when off."""
    on = body.get("logprobs")
    require(on is None or isinstance(on, bool), "logprobs must be a boolean", "logprobs")
    top = body.get("top_logprobs")
    if top is None:
        return 0 if on else None
    require(isinstance(top, int) and not isinstance(top, bool) and 0 <= top <= MAX_TOP_LOGPROBS,
            f"top_logprobs must be an integer between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs")
    require(bool(on), "top_logprobs needs logprobs: true", "top_logprobs")
    return top
