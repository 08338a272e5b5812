"""The lower-level prefill entry points of the published package: the Triton and FlexAttention variants.

The published package forwards these to its implementation module, whose signatures they take here:
``attention_mask``, ``sw_index`` and ``topk`` are required positionally, the rest are keywords. Their
kernel choices (Triton or FlexAttention sliding window, block sizes, warps, stages, bf16 P@V) are how the
published package computes the same function, so they are validated and the exact math runs through
``superlinear_attention``. ``build_sw_blockmask`` returns a ``SlidingWindowMask`` record instead of a
FlexAttention BlockMask: it carries the window the FlexAttention variants need and check.
"""

from dataclasses import dataclass

import torch

from ...common.validation import require, require_int
from ..arguments import params_from, published_name, require_flag, require_knobs, require_multihead
from .api import superlinear_attention


@dataclass(frozen=True)
class SlidingWindowMask:
    """What ``build_sw_blockmask`` describes: the sliding window of ``sw_index`` for a query/key layout."""

    batch_size: int
    q_len: int
    kv_len: int
    sw_index: int
    window: int
    search_power: float | None
    inv_search_power_int: int | None


def build_sw_blockmask(
    batch_size,
    q_len,
    kv_len,
    sw_index=0,
    attention_mask=None,
    cache_position=None,
    block_size=128,
    device=None,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
):
    """Describe the sliding window of ``sw_index`` for the FlexAttention prefill variants.

    ``cache_position`` is required (as in the published package); ``attention_mask`` (left padding) and
    ``device`` are accepted for the published signature: the window start follows the mask at call time.
    """
    require(cache_position is not None, "cache_position: build_sw_blockmask needs the query positions")
    for name, value in (("batch_size", batch_size), ("q_len", q_len), ("kv_len", kv_len)):
        require_int(name, value, 0)
    require_knobs(block_size=block_size)
    params = params_from(locals())
    return SlidingWindowMask(
        batch_size, q_len, kv_len, sw_index, params.window, search_power, inv_search_power_int
    )


def _require_window_mask(sw_block_mask, sw_index, search_power, inv_search_power_int) -> None:
    require(
        isinstance(sw_block_mask, SlidingWindowMask),
        f"sw_block_mask must come from build_sw_blockmask, got {type(sw_block_mask).__name__}",
    )
    same = (sw_block_mask.sw_index, sw_block_mask.search_power, sw_block_mask.inv_search_power_int) == (
        sw_index,
        search_power,
        inv_search_power_int,
    )
    require(same, "sw_block_mask was built for another sw_index or search power than this call's")


def _require_key_positions(key_cache_position, K) -> None:
    # Keys sit at positions 0 .. LKV - 1 (docs/attention.md); any other key layout is refused, not guessed.
    if key_cache_position is None:
        return
    expected = torch.arange(K.shape[2], device=key_cache_position.device)
    require(
        key_cache_position.shape == expected.shape and bool((key_cache_position == expected).all()),
        "key_cache_position: keys must sit at positions 0 .. LKV - 1 (only that layout is supported)",
    )


# The tuning knobs of the published Triton variant: how it tiles the work, never what it computes.
_TRITON_KNOBS = ("sw_block_k", "sw_block_m_dense", "sw_num_warps", "sw_num_stages")


def _triton_variant(args: dict):
    """The body of ``fused_prefill_with_swtriton``; ``args`` is its ``locals()``."""
    Q1, Q2, K, V = args["Q1"], args["Q2"], args["K"], args["V"]
    require_flag("use_bf16_pv", args["use_bf16_pv"])
    require_knobs(**{name: args[name] for name in _TRITON_KNOBS})
    _require_key_positions(args["key_cache_position"], K)
    params = params_from(args, args["topk"])
    return superlinear_attention(Q1, Q2, K, V, args["cache_pos"], args["attention_mask"], params=params)


def fused_prefill_with_swtriton(
    Q1,
    Q2,
    K,
    V,
    cache_pos,
    attention_mask,
    sw_index,
    topk,
    *,
    key_cache_position: torch.Tensor | None = None,
    sw_block_k: int = 64,
    sw_block_m_dense: int = 16,
    sw_num_warps: int = 4,
    sw_num_stages: int = 2,
    use_bf16_pv: bool = True,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
):
    """Superlinear attention prefill, multi-head (HQ == HKV), in the published low-level signature."""
    require_multihead(Q2, K, "fused_prefill_with_swtriton", "fused_prefill_with_swtriton_gqa")
    return _triton_variant(locals())


def _flex_variant(name: str, doc: str, *, mha: bool):
    """A published FlexAttention prefill (its window from ``build_sw_blockmask``); ``mha``: HQ == HKV."""

    def variant(
        Q1,
        Q2,
        K,
        V,
        cache_pos,
        attention_mask,
        sw_block_mask,
        sw_index,
        topk,
        backward_factor: float = 2.0,
        forward_factor: float = 0.0,
        span_power: float = 0.5,
        search_power: float | None = None,
        inv_search_power_int: int | None = 2,
    ):
        if mha:
            require_multihead(Q2, K, name, f"{name}_gqa")
        _require_window_mask(sw_block_mask, sw_index, search_power, inv_search_power_int)
        params = params_from(locals(), topk)
        return superlinear_attention(Q1, Q2, K, V, cache_pos, attention_mask, params=params)

    return published_name(variant, name, doc)


fused_prefill_with_swflex = _flex_variant(
    "fused_prefill_with_swflex",
    """Superlinear attention prefill, multi-head (HQ == HKV), with a ``build_sw_blockmask`` window.""",
    mha=True,
)
fused_prefill_with_swflex_gqa = _flex_variant(
    "fused_prefill_with_swflex_gqa",
    """Superlinear attention prefill, grouped KV heads, with a ``build_sw_blockmask`` window.""",
    mha=False,
)
