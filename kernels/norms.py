"""RMSNorm over the last dimension in one Triton kernel (fp32 math, output in the input dtype)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common.toolkit import interpreting, padded_block

__all__ = ["rms_norm", "supported"]


def supported(x: torch.Tensor) -> bool:
    """Whether the kernel takes `x`: CUDA (or the Triton interpreter), last dimension contiguous."""
    on_device = x.is_cuda or interpreting()
    return on_device and x.stride(-1) == 1


@triton.jit
def _rms_norm_kernel(x_ptr, w_ptr, out_ptr, stride_row, H, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    o = tl.arange(0, BLOCK)
    ok = o < H
    x = tl.load(x_ptr + row * stride_row + o, mask=ok, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / H + eps)
    w = tl.load(w_ptr + o, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * H + o, (w * (x * rstd)).to(out_ptr.dtype.element_ty), mask=ok)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`weight * x / rms(x)` over the last dimension, computed in fp32; returns x's shape and dtype."""
    size = x.shape[-1]
    rows = x.reshape(-1, size)
    out = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    if rows.shape[0]:
        block = padded_block(size)
        _rms_norm_kernel[(rows.shape[0],)](
            rows, weight, out, rows.stride(0), size, eps, BLOCK=block, num_warps=min(8, max(1, block // 512))
        )
    return out.view(x.shape)
