"""Superlinear attention prefill entry points: validate, then dispatch on the tensors' device."""

from collections.abc import Callable

import torch

from ...common.dispatch import choose_implementation, lazy_implementation
from ...common.validation import require
from ..arguments import validate_call
from ..params import SuperlinearParams
from .reference import superlinear_attention_reference

# Device type -> accelerated prefill with the reference's signature. The Triton prefill serves "cuda"
# (fp16/bf16, head dim <= 128; it runs the reference itself for anything else).
ACCELERATED_PREFILL: dict[str, Callable] = {
    "cuda": lazy_implementation(".prefill", "triton_prefill", __package__, superlinear_attention_reference),
}


def superlinear_attention(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    params: SuperlinearParams,
    block_q: int | None = None,
) -> torch.Tensor:
    """Compute Superlinear attention (docs/attention.md) for queries at ``cache_position``.

    Q1 (search), Q2 (attention): [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D] with keys at 0 .. LKV - 1;
    cache_position: [LQ] int, each < LKV; attention_mask: None or [B, LKV] (1 = valid, left padding).
    Returns [B, HQ, LQ, D] in Q2's dtype. Raises ValueError naming a bad argument before any compute.
    """
    validate_call(Q1, Q2, K, V, cache_position, attention_mask, params)
    if block_q is not None:
        require(isinstance(block_q, int) and block_q > 0, f"block_q must be a positive int, got {block_q!r}")
    implementation = choose_implementation(ACCELERATED_PREFILL, Q2.device, superlinear_attention_reference)
    return implementation(Q1, Q2, K, V, cache_position, attention_mask, params, block_q)
