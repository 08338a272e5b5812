"""Span attention: our decode entry point, the per-span attention reference, and the published API.

The published package's names (``superlinear.kernels.superlinear.span`` of ``superlinear`` 0.1.0) are
all here with their published signatures; see ``published`` and ``masks``.
"""

from ..search.published import compute_qend_from_qanchor
from .api import superlinear_decode
from .masks import (
    create_sliding_window_mask,
    create_sort_indices,
    create_sorted_span_mask,
    create_span_mask,
    invert_sorted_matrix,
)
from .published import (
    _assert_no_span_sw_overlap,
    _next_power_of_two,
    decode_attention,
    decode_attention_gqa,
    decode_span_attention,
    decode_span_attention_gqa,
    decode_span_attention_staged,
    decode_span_attention_staged_gqa,
    fused_span_attention,
    fused_span_attention_gqa,
    span_attention,
    span_attention_gqa,
)
from .reference import attend_block, decode_reference, interval_attention, merge_by_lse

__all__ = [
    "_assert_no_span_sw_overlap",
    "_next_power_of_two",
    "attend_block",
    "compute_qend_from_qanchor",
    "create_sliding_window_mask",
    "create_sort_indices",
    "create_sorted_span_mask",
    "create_span_mask",
    "decode_attention",
    "decode_attention_gqa",
    "decode_reference",
    "decode_span_attention",
    "decode_span_attention_gqa",
    "decode_span_attention_staged",
    "decode_span_attention_staged_gqa",
    "fused_span_attention",
    "fused_span_attention_gqa",
    "interval_attention",
    "invert_sorted_matrix",
    "merge_by_lse",
    "span_attention",
    "span_attention_gqa",
    "superlinear_decode",
]
