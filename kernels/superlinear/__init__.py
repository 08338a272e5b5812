"""Superlinear attention: parameters, coverage checker, prefill and decode entry points."""

from .attention import fused_prefill_with_swtriton_gqa, superlinear_attention, superlinear_attention_trainable
from .coverage import CoverageReport, check_coverage
from .params import SuperlinearParams
from .span import decode_span_attention_staged_gqa

__all__ = [
    "CoverageReport",
    "SuperlinearParams",
    "check_coverage",
    "decode_span_attention_staged_gqa",
    "fused_prefill_with_swtriton_gqa",
    "superlinear_attention",
    "superlinear_attention_trainable",
]
