"""Logit processing shared by sampling and log-probabilities: `logit_bias`, and the reported log-softmax."""

from __future__ import annotations

import numpy as np
import torch

from superlinear.core.values import RawLogprob, SamplingParams

__all__ = ["biased_logits", "token_logprobs", "mask_disallowed"]


def biased_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Return fp32 CPU logits [V] with `params.logit_bias` added (a copy; the state's logits stay)."""
    out = logits.detach().float().cpu()
    if params.logit_bias:
        ids = torch.tensor([tid for tid, _ in params.logit_bias], dtype=torch.long)
        bias = torch.tensor([b for _, b in params.logit_bias], dtype=torch.float32)
        out = out.clone()
        out.index_add_(0, ids, bias)
    return out


def token_logprobs(logits: torch.Tensor, params: SamplingParams, token_id: int, top_n: int) -> RawLogprob:
    """`token_id`'s log-probability and the `top_n` most likely ids under the biased logits, before
    temperature, top-k and top-p (the model's distribution as the sampler starts from it)."""
    logp = torch.log_softmax(biased_logits(logits, params), dim=-1)
    top: tuple[tuple[int, float], ...] = ()
    if top_n > 0:
        values, ids = torch.topk(logp, min(top_n, logp.numel()))
        top = tuple((int(i), float(v)) for i, v in zip(ids, values, strict=True))
    return RawLogprob(token_id, float(logp[token_id]), top)


def mask_disallowed(logits: torch.Tensor, allowed: bytes) -> torch.Tensor:
    """Set to -inf every id whose bit in `allowed` (bit i % 8 of byte i // 8) is clear."""
    bits = np.unpackbits(np.frombuffer(allowed, dtype=np.uint8), bitorder="little")[: logits.numel()]
    keep = torch.zeros(logits.numel(), dtype=torch.bool)
    keep[: bits.size] = torch.from_numpy(bits.astype(np.bool_))
    return logits.masked_fill(~keep, -torch.inf)
