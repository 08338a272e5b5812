"""One Mamba-2 decode token in three Triton kernels, no host sync (CUDA-graph capturable).

1. ``conv_step``: the causal depthwise conv over the cached window plus the new input, bias, SiLU; the
   window shifts in place;
2. ``ssm_step_fused``: per (head, block of head_dim): ``dt = softplus(dt + dt_bias)`` (clamped),
   ``state = state * exp(dt * A) + dt * x B``, ``y = C . state + D x``; the fp32 state updates in place;
3. ``gated_rms_norm_rows``: ``y * silu(z)``, RMS-normalised over groups of channels, times the weight.

Each matches the PyTorch path of the adapter's Mamba-2 mixer (fp32 math, inputs in the model dtype).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..common.toolkit import interpreting, padded_block

__all__ = ["supported", "conv_step", "ssm_step_fused", "gated_rms_norm_rows"]


def supported(hidden: torch.Tensor) -> bool:
    """Whether these kernels take the tensors: CUDA, or anything under the Triton interpreter."""
    return hidden.is_cuda or interpreting()


@triton.jit
def _conv_kernel(
    x_ptr,
    win_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    C,
    stride_wc,
    HAS_BIAS: tl.constexpr,
    W: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    o_c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = o_c < C
    o_j = tl.arange(0, BLOCK_W)
    # vals[:, j] = window[:, j] for j < W - 1, the new input at j = W - 1.
    in_win = o_j < W - 1
    p_win = win_ptr + o_c[:, None] * (W - 1) + o_j[None, :]
    old = tl.load(p_win, mask=c_ok[:, None] & in_win[None, :], other=0.0).to(tl.float32)
    new = tl.load(x_ptr + o_c, mask=c_ok, other=0.0)
    vals = tl.where((o_j == W - 1)[None, :], new.to(tl.float32)[:, None], old)
    w = tl.load(
        w_ptr + o_c[:, None] * stride_wc + o_j[None, :], mask=c_ok[:, None] & (o_j < W)[None, :], other=0.0
    )
    acc = tl.sum(vals * w.to(tl.float32), axis=1)
    if HAS_BIAS:
        acc += tl.load(b_ptr + o_c, mask=c_ok, other=0.0).to(tl.float32)
    out = acc / (1.0 + tl.exp(-acc))
    tl.store(out_ptr + o_c, out.to(out_ptr.dtype.element_ty), mask=c_ok)
    # Shift: window[:, j] = vals[:, j + 1], taken from the values already loaded (no aliasing reads).
    for j in tl.static_range(W - 1):
        column = tl.sum(tl.where((o_j == j + 1)[None, :], vals, 0.0), axis=1)
        tl.store(win_ptr + o_c * (W - 1) + j, column.to(win_ptr.dtype.element_ty), mask=c_ok)


def conv_step(
    x: torch.Tensor, window: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """SiLU(conv of [window, x]) for one token; x [C], window [C, W-1] contiguous (shifted in place),
    weight [C, W]; returns [C] in x's dtype."""
    channels, width = weight.shape
    out = torch.empty_like(x)
    block_c = 128
    # fmt: off
    _conv_kernel[(triton.cdiv(channels, block_c),)](
        x, window, weight, bias if bias is not None else weight, out, channels, weight.stride(0),
        HAS_BIAS=bias is not None, W=width, BLOCK_C=block_c, BLOCK_W=padded_block(width),
    )
    # fmt: on
    return out


@triton.jit
def _ssm_kernel(
    x_ptr,
    dt_ptr,
    b_ptr,
    c_ptr,
    state_ptr,
    a_log_ptr,
    d_ptr,
    dt_bias_ptr,
    y_ptr,
    dt_lo,
    dt_hi,
    HEADS_PER_GROUP: tl.constexpr,
    P: tl.constexpr,
    N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    h = tl.program_id(0)
    o_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    o_n = tl.arange(0, BLOCK_N)
    p_ok = o_p < P
    n_ok = o_n < N
    raw = tl.load(dt_ptr + h).to(tl.float32) + tl.load(dt_bias_ptr + h).to(tl.float32)
    dt = tl.where(raw > 20.0, raw, tl.log(1.0 + tl.exp(tl.minimum(raw, 20.0))))
    dt = tl.minimum(tl.maximum(dt, dt_lo), dt_hi)
    a = -tl.exp(tl.load(a_log_ptr + h).to(tl.float32))
    g = h // HEADS_PER_GROUP
    b = tl.load(b_ptr + g * N + o_n, mask=n_ok, other=0.0).to(tl.float32)
    c = tl.load(c_ptr + g * N + o_n, mask=n_ok, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + h * P + o_p, mask=p_ok, other=0.0).to(tl.float32)
    m = p_ok[:, None] & n_ok[None, :]
    p_state = state_ptr + h * P * N + o_p[:, None] * N + o_n[None, :]
    state = tl.load(p_state, mask=m, other=0.0)
    state = state * tl.exp(dt * a) + (dt * x)[:, None] * b[None, :]
    tl.store(p_state, state, mask=m)
    y = tl.sum(state * c[None, :], axis=1) + tl.load(d_ptr + h).to(tl.float32) * x
    tl.store(y_ptr + h * P + o_p, y, mask=p_ok)


def ssm_step_fused(
    x, dt, b, c, state, a_log, d, dt_bias, dt_limit: tuple[float, float] | None
) -> torch.Tensor:
    """One SSM step with the D skip: x [nh*P], dt [nh] (raw), b and c [G*N], state [nh, P, N] fp32
    contiguous (updated in place); returns y [nh*P] fp32."""
    heads, head_dim, size = state.shape
    groups = b.numel() // size
    y = torch.empty(heads * head_dim, dtype=torch.float32, device=x.device)
    lo, hi = dt_limit if dt_limit is not None else (0.0, float("inf"))
    block_p = min(32, padded_block(head_dim))
    # fmt: off
    _ssm_kernel[(heads, triton.cdiv(head_dim, block_p))](
        x, dt, b, c, state, a_log, d, dt_bias, y, float(lo), float(hi),
        HEADS_PER_GROUP=heads // groups, P=head_dim, N=size, BLOCK_P=block_p,
        BLOCK_N=padded_block(size),
    )
    # fmt: on
    return y


@triton.jit
def _gated_norm_kernel(y_ptr, z_ptr, w_ptr, out_ptr, eps, S: tl.constexpr, BLOCK: tl.constexpr):
    g = tl.program_id(0)
    o = tl.arange(0, BLOCK)
    ok = o < S
    y = tl.load(y_ptr + g * S + o, mask=ok, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + g * S + o, mask=ok, other=0.0).to(tl.float32)
    v = y * (z / (1.0 + tl.exp(-z)))
    rstd = 1.0 / tl.sqrt(tl.sum(v * v, axis=0) / S + eps)
    w = tl.load(w_ptr + g * S + o, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + g * S + o, (v * rstd * w).to(out_ptr.dtype.element_ty), mask=ok)


def gated_rms_norm_rows(y, z, weight, n_groups: int, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """RMS norm of ``y * silu(z)`` over ``n_groups`` groups of channels, times ``weight``; y, z [I];
    returns [I] in ``dtype``."""
    size = y.numel() // n_groups
    out = torch.empty(y.numel(), dtype=dtype, device=y.device)
    _gated_norm_kernel[(n_groups,)](y, z, weight, out, eps, S=size, BLOCK=padded_block(size))
    return out
