"""The prefill entry points of the published ``superlinear`` 0.1.0 package, with its exact signatures.

Every name of the published ``superlinear.kernels.superlinear.attention`` module, taking the same
arguments in the same order with the same defaults (published defaults: ``sw_index=0, num_spans=3,
backward_factor=2.0, forward_factor=0.0``), and computing the exact math of docs/attention.md through
``superlinear_attention`` (Triton on CUDA, the reference elsewhere). Tuning knobs of the published Triton
kernels (``block_k``, ``search_block_q``, ``sw_block_k`` ...) are validated and then leave the result
unchanged; unknown keywords raise TypeError like any Python function.

The six prefill names share one body, ``_prefill``; each published signature shape is one real ``def`` in a
factory, named from the table at the bottom, so ``inspect.signature``, ``help`` and TypeError show the
published name and parameters.
"""

import torch

from ..arguments import (
    params_from,
    published_name,
    require_knobs,
    require_multihead,
    resolve_cache_position,
    resolve_topk,
)
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


def _prefill(function: str, args: dict, *, mha: bool = False) -> torch.Tensor:
    """The one body of the prefill names made below; ``args`` is the caller's ``locals()``.

    The query positions are ``cache_position``, or ``cache_pos`` where the name takes both; ``topk``,
    where the name takes it and it is given, overrides ``num_spans``; the block sizes are tuning knobs.
    ``mha`` names also require as many KV heads as query heads.
    """
    positions = args["cache_position"]
    if "cache_pos" in args:
        positions = resolve_cache_position(function, args["cache_pos"], positions)
    require_knobs(block_k=args["block_k"], search_block_q=args["search_block_q"])
    params = params_from(args, resolve_topk(args["num_spans"], args.get("topk")))
    Q1, Q2, K, V = args["Q1"], args["Q2"], args["K"], args["V"]
    if mha:
        require_multihead(Q2, K, "this entry point", "the _gqa variant")
    return superlinear_attention(Q1, Q2, K, V, positions, args["attention_mask"], params=params)


def _taking_cache_pos_and_topk(name: str, doc: str):
    """A published prefill taking ``cache_pos`` (or the keyword ``cache_position``) and the keyword ``topk``."""

    def prefill(
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
        return _prefill(name, locals())

    return published_name(prefill, name, doc)


def _taking_cache_pos(name: str, doc: str, *, mha: bool):
    """A published prefill taking ``cache_pos`` (or the keyword ``cache_position``) and no ``topk``."""

    def prefill(
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
        return _prefill(name, locals(), mha=mha)

    return published_name(prefill, name, doc)


def _taking_cache_position(name: str, doc: str, *, mha: bool):
    """A published prefill taking ``cache_position`` (required, fifth) and the keyword ``topk``."""

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
        return _prefill(name, locals(), mha=mha)

    return published_name(prefill, name, doc)


fused_prefill_with_swtriton_gqa = _taking_cache_pos_and_topk(
    "fused_prefill_with_swtriton_gqa",
    """Superlinear attention prefill, grouped KV heads (the published main entry point).

    Q1 (search), Q2 (attention): [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; ``cache_pos`` or the keyword
    ``cache_position``: [LQ] query positions; attention_mask: None or [B, LKV] (left padding). ``topk``,
    when given, is the number of spans (overrides ``num_spans``). Returns [B, HQ, LQ, D] in Q2's dtype.
    """,
)
fused_prefill_with_swtriton_bucketed_gqa = _taking_cache_pos_and_topk(
    "fused_prefill_with_swtriton_bucketed_gqa",
    """The published bucketed prefill: the same function as ``fused_prefill_with_swtriton_gqa``.

    Bucketing is how the published kernel schedules the spans; the result is the same math, so this runs
    the same path (the prefill groups rows by sorting them on span start, its only metadata path).
    """,
)
full_span_attention_fused_with_search_values = _taking_cache_pos(
    "full_span_attention_fused_with_search_values",
    """Superlinear attention prefill, multi-head (HQ == HKV); arguments as the _gqa prefill.""",
    mha=True,
)
full_span_attention_fused_with_search_values_gqa = _taking_cache_pos(
    "full_span_attention_fused_with_search_values_gqa",
    """Superlinear attention prefill, grouped KV heads; arguments as ``fused_prefill_with_swtriton_gqa``.""",
    mha=False,
)
prefill = _taking_cache_position(
    "prefill",
    """Superlinear attention prefill for multi-head or grouped KV heads (the published preferred name).""",
    mha=False,
)
prefill_mha = _taking_cache_position(
    "prefill_mha",
    """Superlinear attention prefill, multi-head only (HQ == HKV); arguments as ``prefill``.""",
    mha=True,
)

# The published package's alias names (it forwards *args, **kwargs; these take the target's signature).
prefill_gqa = fused_prefill_with_swtriton_gqa
prefill_bucketed_gqa = fused_prefill_with_swtriton_bucketed_gqa
prefill_bucketed = fused_prefill_with_swtriton_bucketed_gqa
