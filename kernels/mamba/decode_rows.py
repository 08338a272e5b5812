"""One Mamba-2 decode token for B sequences in three Triton launches, each row's state in its own buffers.

The rows' conv windows and SSM states live in separate tensors (one per sequence), so each kernel takes a
typed base pointer (the first row's buffer) and a device table of element offsets from it, one per row
(``offsets``): a program of row b reads and updates ``base + offsets[b]``. Nothing syncs with the host and
every shape is fixed by B, so the launches are CUDA-graph capturable (the table is built before capture and
stays valid while the rows' buffers do). The math is ``decode.py``'s, a batch axis added:

1. ``conv_rows``: SiLU of the causal depthwise conv over each row's window plus its new input; the windows
   shift in place;
2. ``ssm_rows``: ``dt = softplus(dt + dt_bias)`` (clamped), ``state = state * exp(dt * A) + dt * x B``,
   ``y = C . state + D x``, each row's fp32 state in place;
3. ``gated_rms_norm_batch``: ``y * silu(z)`` RMS-normalised over groups of channels, times the weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from ..common.toolkit import padded_block

__all__ = ["offsets", "conv_rows", "ssm_rows", "gated_rms_norm_batch"]


def offsets(buffers: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element offsets of each buffer from the first (same dtype, contiguous), an int64 table on their device."""
    base, size = buffers[0].data_ptr(), buffers[0].element_size()
    return torch.tensor([(t.data_ptr() - base) // size for t in buffers], dtype=torch.int64,
                        device=buffers[0].device)


@triton.jit
def _conv_rows_kernel(
    x_ptr, stride_x, win_ptr, win_off_ptr, w_ptr, b_ptr, out_ptr, C, stride_wc,
    HAS_BIAS: tl.constexpr, W: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):
    i_b = tl.program_id(1)
    win = win_ptr + tl.load(win_off_ptr + i_b)
    o_c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = o_c < C
    o_j = tl.arange(0, BLOCK_W)
    in_win = o_j < W - 1
    old = tl.load(win + o_c[:, None] * (W - 1) + o_j[None, :], mask=c_ok[:, None] & in_win[None, :], other=0.0)
    new = tl.load(x_ptr + i_b * stride_x + o_c, mask=c_ok, other=0.0)
    vals = tl.where((o_j == W - 1)[None, :], new.to(tl.float32)[:, None], old.to(tl.float32))
    w = tl.load(
        w_ptr + o_c[:, None] * stride_wc + o_j[None, :], mask=c_ok[:, None] & (o_j < W)[None, :], other=0.0
    )
    acc = tl.sum(vals * w.to(tl.float32), axis=1)
    if HAS_BIAS:
        acc += tl.load(b_ptr + o_c, mask=c_ok, other=0.0).to(tl.float32)
    out = acc / (1.0 + tl.exp(-acc))
    tl.store(out_ptr + i_b * C + o_c, out.to(out_ptr.dtype.element_ty), mask=c_ok)
    for j in tl.static_range(W - 1):
        column = tl.sum(tl.where((o_j == j + 1)[None, :], vals, 0.0), axis=1)
        tl.store(win + o_c * (W - 1) + j, column.to(win_ptr.dtype.element_ty), mask=c_ok)


def conv_rows(
    xbc: torch.Tensor, windows: Sequence[torch.Tensor], table: torch.Tensor, weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """SiLU(conv of [window_b, xbc[b]]) for B rows; xbc [B, C] (unit column stride), windows[b] [C, W-1]
    contiguous (shifted in place; ``table`` = ``offsets(windows)``), weight [C, W]; returns [B, C]."""
    rows, channels = xbc.shape
    width = weight.shape[1]
    out = torch.empty(rows, channels, dtype=xbc.dtype, device=xbc.device)
    block_c = 128
    # fmt: off
    _conv_rows_kernel[(triton.cdiv(channels, block_c), rows)](
        xbc, xbc.stride(0), windows[0], table, weight, bias if bias is not None else weight, out, channels,
        weight.stride(0), HAS_BIAS=bias is not None, W=width, BLOCK_C=block_c, BLOCK_W=padded_block(width),
    )
    # fmt: on
    return out


@triton.jit
def _ssm_rows_kernel(
    xbc_ptr, dt_ptr, stride_dt, state_ptr, state_off_ptr, a_log_ptr, d_ptr, dt_bias_ptr, y_ptr,
    dt_lo, dt_hi, C, B_OFF, C_OFF,
    HEADS_PER_GROUP: tl.constexpr, H: tl.constexpr, P: tl.constexpr, N: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
):
    h = tl.program_id(0)
    i_b = tl.program_id(2)
    o_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    o_n = tl.arange(0, BLOCK_N)
    p_ok = o_p < P
    n_ok = o_n < N
    row = xbc_ptr + i_b * C
    raw = tl.load(dt_ptr + i_b * stride_dt + h).to(tl.float32) + tl.load(dt_bias_ptr + h).to(tl.float32)
    dt = tl.where(raw > 20.0, raw, tl.log(1.0 + tl.exp(tl.minimum(raw, 20.0))))
    dt = tl.minimum(tl.maximum(dt, dt_lo), dt_hi)
    a = -tl.exp(tl.load(a_log_ptr + h).to(tl.float32))
    g = h // HEADS_PER_GROUP
    b = tl.load(row + B_OFF + g * N + o_n, mask=n_ok, other=0.0).to(tl.float32)
    c = tl.load(row + C_OFF + g * N + o_n, mask=n_ok, other=0.0).to(tl.float32)
    x = tl.load(row + h * P + o_p, mask=p_ok, other=0.0).to(tl.float32)
    m = p_ok[:, None] & n_ok[None, :]
    p_state = state_ptr + tl.load(state_off_ptr + i_b) + h * P * N + o_p[:, None] * N + o_n[None, :]
    state = tl.load(p_state, mask=m, other=0.0)
    state = state * tl.exp(dt * a) + (dt * x)[:, None] * b[None, :]
    tl.store(p_state, state, mask=m)
    y = tl.sum(state * c[None, :], axis=1) + tl.load(d_ptr + h).to(tl.float32) * x
    tl.store(y_ptr + i_b * H * P + h * P + o_p, y, mask=p_ok)


def ssm_rows(
    xbc: torch.Tensor, dt: torch.Tensor, states: Sequence[torch.Tensor], table: torch.Tensor, a_log, d, dt_bias,
    n_groups: int, dt_limit: tuple[float, float] | None,
) -> torch.Tensor:
    """One SSM step with the D skip for B rows: xbc [B, C] contiguous (conv output: x, then B, then C),
    dt [B, nh] raw (unit column stride), states[b] [nh, P, N] fp32 contiguous (updated in place; ``table``
    = ``offsets(states)``); returns y [B, nh * P] fp32."""
    rows, channels = xbc.shape
    heads, head_dim, size = states[0].shape
    inner = heads * head_dim
    y = torch.empty(rows, inner, dtype=torch.float32, device=xbc.device)
    lo, hi = dt_limit if dt_limit is not None else (0.0, float("inf"))
    block_p = min(32, padded_block(head_dim))
    # fmt: off
    _ssm_rows_kernel[(heads, triton.cdiv(head_dim, block_p), rows)](
        xbc, dt, dt.stride(0), states[0], table, a_log, d, dt_bias, y, float(lo), float(hi), channels,
        inner, inner + n_groups * size,
        HEADS_PER_GROUP=heads // n_groups, H=heads, P=head_dim, N=size, BLOCK_P=block_p,
        BLOCK_N=padded_block(size),
    )
    # fmt: on
    return y


@triton.jit
def _gated_norm_rows_kernel(y_ptr, z_ptr, stride_z, w_ptr, out_ptr, eps, INNER, S: tl.constexpr,
                            BLOCK: tl.constexpr):
    g = tl.program_id(0)
    i_b = tl.program_id(1)
    o = tl.arange(0, BLOCK)
    ok = o < S
    y = tl.load(y_ptr + i_b * INNER + g * S + o, mask=ok, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + i_b * stride_z + g * S + o, mask=ok, other=0.0).to(tl.float32)
    v = y * (z / (1.0 + tl.exp(-z)))
    rstd = 1.0 / tl.sqrt(tl.sum(v * v, axis=0) / S + eps)
    w = tl.load(w_ptr + g * S + o, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + i_b * INNER + g * S + o, (v * rstd * w).to(out_ptr.dtype.element_ty), mask=ok)


def gated_rms_norm_batch(y, z, weight, n_groups: int, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """RMS norm of ``y * silu(z)`` per row over ``n_groups`` groups of channels, times ``weight``; y [B, I]
    contiguous, z [B, I] (unit column stride); returns [B, I] in ``dtype``."""
    rows, inner = y.shape
    size = inner // n_groups
    out = torch.empty(rows, inner, dtype=dtype, device=y.device)
    _gated_norm_rows_kernel[(n_groups, rows)](y, z, z.stride(0), weight, out, eps, inner, S=size,
                                              BLOCK=padded_block(size))
    return out
