"""Log-probabilities of generated tokens: naming their tokens, and the reference log-softmax.

Reported numbers are the log-softmax of the model's logits with `logit_bias` added, before temperature,
top-k and top-p: the model's own distribution, so greedy and sampled requests report the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .ports import TokenizerPort
from .values import RawLogprob, TokenLogprob

__all__ = ["describe", "logprobs_of", "MAX_TOP_LOGPROBS"]

MAX_TOP_LOGPROBS = 20


def describe(tok: TokenizerPort, raw: RawLogprob) -> TokenLogprob:
    """Give a model's RawLogprob the texts of its tokens."""
    return TokenLogprob(raw.token_id, tok.decode([raw.token_id]), raw.logprob,
                        tuple((tok.decode([i]), lp) for i, lp in raw.top))


def logprobs_of(logits: Mapping[int, float], token_id: int, top_n: int) -> RawLogprob:
    """The reference log-softmax over a sparse logit table (ids absent are -inf)."""
    peak = max(logits.values())
    norm = peak + math.log(sum(math.exp(v - peak) for v in logits.values() if v > -math.inf))
    ranked = sorted(logits.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
    chosen = logits.get(token_id, -math.inf) - norm
    return RawLogprob(token_id, chosen, tuple((i, v - norm) for i, v in ranked))
