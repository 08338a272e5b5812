"""Shared Triton helpers and launch arithmetic of the kernels: one definition of each.

Host side: whether Triton runs in its CPU interpreter, the padded tile widths (``block_d``,
``padded_block``), the base-2 softmax scale (``qk_scale``) and the multiprocessor count that sizes
persistent grids (``multiprocessors``). Device side: ``dot``, the tensor-core
product that the interpreter computes in fp32 (its bf16 ``tl.dot`` is wrong).

This module imports Triton, so ``kernels.common``'s package namespace does not re-export it: the
reference paths stay importable where Triton is missing.
"""

import os
from functools import lru_cache

import torch
import triton
import triton.language as tl

# log2(e): the kernels compute ``exp`` as ``exp2`` of scores pre-multiplied by it.
LOG2_E = 1.4426950408889634
# A start position past every key (the empty interval ``[NO_KEY, -1]``).
NO_KEY = tl.constexpr(2147483647)
# The narrowest tile ``tl.dot`` accepts along any axis.
MIN_DOT_BLOCK = 16


def interpreting() -> bool:
    """Return whether Triton runs in its CPU interpreter (whose bf16 ``tl.dot`` is wrong, so we upcast)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def padded_block(size: int, minimum: int = 1) -> int:
    """The tile width covering ``size`` elements: the next power of two, at least ``minimum``."""
    return max(minimum, triton.next_power_of_2(size))


def block_d(head_dim: int) -> int:
    """The tile width of the head dimension in the attention kernels (a ``tl.dot`` operand axis)."""
    return padded_block(head_dim, MIN_DOT_BLOCK)


def qk_scale(head_dim: int) -> float:
    """The factor on ``q . k`` that turns scores into base-2 logits: ``log2(e) / sqrt(head_dim)``."""
    return LOG2_E / head_dim**0.5


@lru_cache(maxsize=8)
def multiprocessors(device: torch.device) -> int:
    """The multiprocessor count of ``device``, which sizes persistent grids; 4 off CUDA, so that the
    interpreter still runs a persistent loop's striding over several programs."""
    if interpreting() or device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(device).multi_processor_count


@triton.jit
def dot(a, b, F32: tl.constexpr):
    """``a @ b`` accumulated in fp32; with ``F32`` (the interpreter) both operands are upcast first."""
    if F32:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out
