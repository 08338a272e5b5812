"""Superlinear attention: our prefill entry point, the PyTorch reference, and the published API.

The published package's names (``superlinear.kernels.superlinear.attention`` of ``superlinear`` 0.1.0)
are all here with their published signatures; see ``published``.
"""

from .api import superlinear_attention
from .published import (
    SlidingWindowMask,
    build_sw_blockmask,
    decode_attention,
    decode_attention_gqa,
    decode_span_attention_staged,
    decode_span_attention_staged_gqa,
    full_span_attention_fused_with_search_values,
    full_span_attention_fused_with_search_values_gqa,
    fused_prefill_with_swflex,
    fused_prefill_with_swflex_gqa,
    fused_prefill_with_swtriton,
    fused_prefill_with_swtriton_bucketed_gqa,
    fused_prefill_with_swtriton_gqa,
    prefill,
    prefill_bucketed,
    prefill_bucketed_gqa,
    prefill_gqa,
    prefill_mha,
)
from .reference import superlinear_attention_reference
from .trainable import superlinear_attention_trainable

__all__ = [
    "SlidingWindowMask",
    "build_sw_blockmask",
    "decode_attention",
    "decode_attention_gqa",
    "decode_span_attention_staged",
    "decode_span_attention_staged_gqa",
    "full_span_attention_fused_with_search_values",
    "full_span_attention_fused_with_search_values_gqa",
    "fused_prefill_with_swflex",
    "fused_prefill_with_swflex_gqa",
    "fused_prefill_with_swtriton",
    "fused_prefill_with_swtriton_bucketed_gqa",
    "fused_prefill_with_swtriton_gqa",
    "prefill",
    "prefill_bucketed",
    "prefill_bucketed_gqa",
    "prefill_gqa",
    "prefill_mha",
    "superlinear_attention",
    "superlinear_attention_reference",
    "superlinear_attention_trainable",
]
