"""Superlinear attention decode entry point: validate, then dispatch on the tensors' device."""

from collections.abc import Callable

import torch

from ...common.dispatch import choose_implementation, lazy_implementation
from ...common.validation import require
from ..arguments import validate_call
from ..params import SuperlinearParams
from .reference import decode_reference

# Device type -> accelerated decode with the reference's signature. The Triton decode serves "cuda"
# (fp16/bf16, head dim <= 128; it runs the reference itself for anything else).
ACCELERATED_DECODE: dict[str, Callable] = {
    "cuda": lazy_implementation(".decode", "triton_decode", __package__, decode_reference),
}


def superlinear_decode(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    params: SuperlinearParams,
    enable_gqa: bool = True,
) -> torch.Tensor:
    """Superlinear attention decode (one query per row); the published entry points call this.

    Q1, Q2: [B, HQ, 1, D]; K, V: [B, HKV, LKV, D] (the cache; keys after the query are ignored);
    cache_position: [1], the query's position (< LKV); attention_mask: None or [B, LKV]. With
    ``enable_gqa=False`` HQ must equal HKV. Returns [B, HQ, 1, D] in Q2's dtype.
    """
    shapes = validate_call(Q1, Q2, K, V, cache_position, attention_mask, params)
    require(
        shapes.q_len == 1, f"cache_position: decode takes exactly one query position, got LQ={shapes.q_len}"
    )
    require(
        enable_gqa or shapes.q_heads == shapes.kv_heads,
        f"enable_gqa=False needs as many KV heads as query heads, "
        f"got HQ={shapes.q_heads}, HKV={shapes.kv_heads}",
    )
    implementation = choose_implementation(ACCELERATED_DECODE, Q2.device, decode_reference)
    return implementation(Q1, Q2, K, V, cache_position, attention_mask, params)
