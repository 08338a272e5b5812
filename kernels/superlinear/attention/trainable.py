"""The training entry point of Superlinear attention: gradients for Q1, Q2, K and V.

``superlinear_attention_trainable`` takes ``superlinear_attention``'s arguments and returns the same
function, differentiable: on CUDA (fp16/bf16) and under ``TRITON_INTERPRET=1`` (fp16/bf16/fp32) through
the Triton forward and backward of ``attention.backward``, elsewhere (CPU, float64, no Triton) through
autograd of the PyTorch reference. Importing this module never imports Triton.
"""

import os

import torch

from ...common.validation import require
from ..arguments import validate_call
from ..params import SuperlinearParams
from .reference import superlinear_attention_reference


def superlinear_attention_trainable(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    params: SuperlinearParams,
    block_m: int = 64,
) -> torch.Tensor:
    """Superlinear attention (docs/attention.md) with gradients for Q1, Q2, K and V.

    Q1, Q2: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; cache_position: [LQ]; attention_mask: None or
    [B, LKV]. ``block_m``: rows per program of the Triton kernels. Returns [B, HQ, LQ, D] in Q2's dtype.
    The top-k choice of spans gets no gradient (docs/attention-backward.md). Raises ValueError naming a
    bad argument before any compute.
    """
    validate_call(Q1, Q2, K, V, cache_position, attention_mask, params)
    require(isinstance(block_m, int) and block_m >= 16, f"block_m must be an int >= 16, got {block_m!r}")
    if Q2.is_cuda or os.environ.get("TRITON_INTERPRET", "0") == "1":
        try:
            from .backward import triton_trainable
        except ImportError:  # no Triton installed: the reference is differentiable too
            triton_trainable = None
        if triton_trainable is not None:
            return triton_trainable(Q1, Q2, K, V, cache_position, attention_mask, params, block_m)
    return superlinear_attention_reference(Q1, Q2, K, V, cache_position, attention_mask, params)
