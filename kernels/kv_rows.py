"""One decode token's keys and values for B sequences written into their own KV buffers in one launch.

Each sequence keeps its keys and values in separate contiguous buffers [1, HKV, capacity, D] of its own
capacity. The kernel takes the first row's buffers as typed base pointers and device tables of each row's
element offsets from them (``offsets``), capacity and position, so it is one launch for all rows, never
syncs with the host and is CUDA-graph capturable (tables built before capture; the positions read on the
device at each replay).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from .common.toolkit import padded_block

__all__ = ["offsets", "write_kv_rows"]


def offsets(buffers: Sequence[torch.Tensor], base: torch.Tensor | None = None) -> torch.Tensor:
    """Element offsets of each buffer from ``base`` (default the first; same dtype), an int64 table on
    their device. A fixed ``base`` (a buffer that outlives the rows) lets a kernel launched with it as its
    pointer serve any rows: only the table changes."""
    anchor = buffers[0] if base is None else base
    if any(t.dtype != anchor.dtype for t in buffers):
        raise ValueError("every buffer needs the base's dtype")
    base, size = anchor.data_ptr(), anchor.element_size()
    return torch.tensor([(t.data_ptr() - base) // size for t in buffers], dtype=torch.int64,
                        device=buffers[0].device)


@triton.jit
def _kv_rows_kernel(
    k_ptr, v_ptr, stride_kb, stride_kh, stride_vb, stride_vh, kc_ptr, vc_ptr, k_off_ptr, v_off_ptr, cap_ptr,
    pos_ptr, D: tl.constexpr, BLOCK_D: tl.constexpr,
):
    i_b = tl.program_id(0)
    h = tl.program_id(1)
    pos = tl.load(pos_ptr + i_b).to(tl.int64)
    cap = tl.load(cap_ptr + i_b)
    o = tl.arange(0, BLOCK_D)
    ok = o < D
    at = (h * cap + pos) * D + o
    k = tl.load(k_ptr + i_b * stride_kb + h * stride_kh + o, mask=ok)
    tl.store(kc_ptr + tl.load(k_off_ptr + i_b) + at, k.to(kc_ptr.dtype.element_ty), mask=ok)
    v = tl.load(v_ptr + i_b * stride_vb + h * stride_vh + o, mask=ok)
    tl.store(vc_ptr + tl.load(v_off_ptr + i_b) + at, v.to(vc_ptr.dtype.element_ty), mask=ok)


def write_kv_rows(
    k: torch.Tensor, v: torch.Tensor, k_buffers: Sequence[torch.Tensor], v_buffers: Sequence[torch.Tensor],
    tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], positions: torch.Tensor,
    anchors: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """Store row b's ``k[b]``, ``v[b]`` [HKV, 1, D] (unit stride in D) at ``positions[b]`` of its buffers
    ``k_buffers[b]``, ``v_buffers[b]`` [1, HKV, cap_b, D] contiguous; ``tables`` = (``offsets(k_buffers)``,
    ``offsets(v_buffers)``, capacities int64), all on the device; with ``anchors`` (k, v) the offsets count
    from those tensors instead of row 0's buffers."""
    k_base, v_base = anchors if anchors is not None else (k_buffers[0], v_buffers[0])
    rows, heads, _, dim = k.shape
    k_off, v_off, caps = tables
    # fmt: off
    _kv_rows_kernel[(rows, heads)](
        k, v, k.stride(0), k.stride(1), v.stride(0), v.stride(1), k_base, v_base, k_off, v_off, caps,
        positions, D=dim, BLOCK_D=padded_block(dim),
    )
    # fmt: on
