"""The prefill entry points of the published ``superlinear`` 0.1.0 package, with its exact signatures.

Every name of the published ``superlinear.kernels.superlinear.attention`` module, taking the same
arguments in the same order with the same defaults (published defaults: ``sw_index=0, num_spans=3,
backward_factor=2.0, forward_factor=0.0``), and computing the exact math of ATTENTION.md through
``superlinear_attention`` (Triton on CUDA, the reference elsewhere). Tuning knobs of the published Triton
kernels (``block_k``, ``search_block_q``, ``sw_block_k`` ...) are validated and then leave the result
unchanged; unknown keywords raise TypeError like any Python function.
"""

import torch

from ...common.validation import require
from ..arguments import published_params, require_knobs, resolve_cache_position, resolve_topk
from ..params import SuperlinearParams
from ..span.published import (
    decode_attention,
    decode_attention_gqa,
    decode_span_attention_staged,
    decode_span_attention_staged_gqa,
)
from .api import superlinear_attention
from .published_lowlevel import (
    SlidingWindowMask,
    build_sw_blockmask,
    fused_prefill_with_swflex,
    fused_prefill_with_swflex_gqa,
    fused_prefill_with_swtriton,
)

__all__ = [
    "SlidingWindowMask",
    "build_sw_blockmask",
    "fused_prefill_with_swflex",
    "fused_prefill_with_swflex_gqa",
    "fused_prefill_with_swtriton",
    "fused_prefill_with_swtriton_gqa",
    "fused_prefill_with_swtriton_bucketed_gqa",
    "prefill",
    "prefill_gqa",
    "prefill_bucketed_gqa",
    "prefill_mha",
    "prefill_bucketed",
    "decode_span_attention_staged",
    "decode_span_attention_staged_gqa",
    "decode_attention",
    "decode_attention_gqa",
    "full_span_attention_fused_with_search_values",
    "full_span_attention_fused_with_search_values_gqa",
]


def _attend(Q1, Q2, K, V, positions, attention_mask, params: SuperlinearParams, *, mha: bool = False):
    """Run the exact math; ``mha`` entry points also require as many KV heads as query heads."""
    if mha:
        require(
            Q2.dim() == 4 and K.dim() == 4 and Q2.shape[1] == K.shape[1],
            f"K: this entry point is multi-head (HQ == HKV), got Q2 {tuple(Q2.shape)}, K {tuple(K.shape)}; "
            "use the _gqa variant for grouped KV heads",
        )
    return superlinear_attention(Q1, Q2, K, V, positions, attention_mask, params=params)


def fused_prefill_with_swtriton_gqa(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_pos: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    cache_position: torch.Tensor | None = None,
    topk: int | None = None,
) -> torch.Tensor:
    """Superlinear attention prefill, grouped KV heads (the published main entry point).

    Q1 (search), Q2 (attention): [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; ``cache_pos`` or the keyword
    ``cache_position``: [LQ] query positions; attention_mask: None or [B, LKV] (left padding). ``topk``,
    when given, is the number of spans (overrides ``num_spans``). Returns [B, HQ, LQ, D] in Q2's dtype.
    """
    positions = resolve_cache_position("fused_prefill_with_swtriton_gqa", cache_pos, cache_position)
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index,
        resolve_topk(num_spans, topk),
        backward_factor,
        forward_factor,
        span_power,
        search_power,
        inv_search_power_int,
    )
    return _attend(Q1, Q2, K, V, positions, attention_mask, params)


def fused_prefill_with_swtriton_bucketed_gqa(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_pos: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    cache_position: torch.Tensor | None = None,
    topk: int | None = None,
) -> torch.Tensor:
    """The published bucketed prefill: the same function as ``fused_prefill_with_swtriton_gqa``.

    Bucketing is how the published kernel schedules the spans; the result is the same math, so this runs
    the same path (``SPAN_ATTENTION_FORCE_SPARSE_META`` picks the bucketing metadata there).
    """
    positions = resolve_cache_position("fused_prefill_with_swtriton_bucketed_gqa", cache_pos, cache_position)
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index,
        resolve_topk(num_spans, topk),
        backward_factor,
        forward_factor,
        span_power,
        search_power,
        inv_search_power_int,
    )
    return _attend(Q1, Q2, K, V, positions, attention_mask, params)


def full_span_attention_fused_with_search_values(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_pos: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    cache_position: torch.Tensor | None = None,
) -> torch.Tensor:
    """Superlinear attention prefill, multi-head (HQ == HKV); arguments as the _gqa prefill."""
    name = "full_span_attention_fused_with_search_values"
    positions = resolve_cache_position(name, cache_pos, cache_position)
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index, num_spans, backward_factor, forward_factor, span_power, search_power, inv_search_power_int
    )
    return _attend(Q1, Q2, K, V, positions, attention_mask, params, mha=True)


def full_span_attention_fused_with_search_values_gqa(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_pos: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    cache_position: torch.Tensor | None = None,
) -> torch.Tensor:
    """Superlinear attention prefill, grouped KV heads; arguments as ``fused_prefill_with_swtriton_gqa``."""
    name = "full_span_attention_fused_with_search_values_gqa"
    positions = resolve_cache_position(name, cache_pos, cache_position)
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index, num_spans, backward_factor, forward_factor, span_power, search_power, inv_search_power_int
    )
    return _attend(Q1, Q2, K, V, positions, attention_mask, params)


def prefill(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    topk: int | None = None,
) -> torch.Tensor:
    """Superlinear attention prefill for multi-head or grouped KV heads (the published preferred name)."""
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index,
        resolve_topk(num_spans, topk),
        backward_factor,
        forward_factor,
        span_power,
        search_power,
        inv_search_power_int,
    )
    return _attend(Q1, Q2, K, V, cache_position, attention_mask, params)


def prefill_mha(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    num_spans: int = 3,
    block_k: int = 64,
    search_block_q: int = 128,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    *,
    topk: int | None = None,
) -> torch.Tensor:
    """Superlinear attention prefill, multi-head only (HQ == HKV); arguments as ``prefill``."""
    require_knobs(block_k=block_k, search_block_q=search_block_q)
    params = published_params(
        sw_index,
        resolve_topk(num_spans, topk),
        backward_factor,
        forward_factor,
        span_power,
        search_power,
        inv_search_power_int,
    )
    return _attend(Q1, Q2, K, V, cache_position, attention_mask, params, mha=True)


# The published package's alias names (it forwards *args, **kwargs; these take the target's signature).
prefill_gqa = fused_prefill_with_swtriton_gqa
prefill_bucketed_gqa = fused_prefill_with_swtriton_bucketed_gqa
prefill_bucketed = fused_prefill_with_swtriton_bucketed_gqa
