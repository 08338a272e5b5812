"""Span attention: the decode entry point and the per-span attention reference."""

from .api import decode_span_attention_staged_gqa
from .reference import attend_block, decode_reference, interval_attention, merge_by_lse

__all__ = [
    "attend_block",
    "decode_reference",
    "decode_span_attention_staged_gqa",
    "interval_attention",
    "merge_by_lse",
]
