"""Superlinear attention: prefill entry points and the PyTorch reference."""

from .api import fused_prefill_with_swtriton_gqa, superlinear_attention
from .reference import superlinear_attention_reference

__all__ = ["fused_prefill_with_swtriton_gqa", "superlinear_attention", "superlinear_attention_reference"]
