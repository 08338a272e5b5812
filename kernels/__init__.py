"""Attention kernels: a leaf package that imports torch and the standard library only."""

from .superlinear import (
    CoverageReport,
    SuperlinearParams,
    check_coverage,
    decode_span_attention_staged_gqa,
    fused_prefill_with_swtriton_gqa,
    superlinear_attention,
    superlinear_attention_trainable,
)

__all__ = [
    "CoverageReport",
    "SuperlinearParams",
    "check_coverage",
    "decode_span_attention_staged_gqa",
    "fused_prefill_with_swtriton_gqa",
    "superlinear_attention",
    "superlinear_attention_trainable",
]
