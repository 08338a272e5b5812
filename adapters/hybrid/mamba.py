"""Mamba-2 mixer: in_proj, causal depthwise conv, selective SSM (chunked SSD scan), gated RMSNorm, out_proj.

Plain PyTorch, so it runs on any device; the SSM math is fp32 whatever the weight dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superlinear.kernels import mamba as mamba_decode

from .config import HybridConfig
from .mamba_kernels import MambaSsmOps, fused_ops
from .state import MambaCache

__all__ = ["Mamba2Mixer", "GatedRMSNorm", "ssd_scan", "ssm_step", "gated_rms_norm"]


class Mamba2Mixer(nn.Module):
    """The Mamba-2 mixer of Nemotron-H; `forward` continues the sequence held in a `MambaCache`."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.num_heads = cfg.mamba_num_heads
        self.head_dim = cfg.mamba_head_dim
        self.n_groups = cfg.n_groups
        self.state_size = cfg.ssm_state_size
        self.inner = cfg.mamba_inner
        self.conv_dim = cfg.conv_dim
        self.chunk_size = cfg.chunk_size
        self.eps = cfg.layer_norm_epsilon
        self.time_step_limit = cfg.time_step_limit
        self.in_proj = nn.Linear(
            cfg.hidden_size, self.inner + self.conv_dim + self.num_heads, bias=cfg.mamba_bias
        )
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, cfg.conv_kernel, groups=self.conv_dim, bias=cfg.use_conv_bias
        )
        self.A_log = nn.Parameter(torch.empty(self.num_heads))
        self.D = nn.Parameter(torch.empty(self.num_heads))
        self.dt_bias = nn.Parameter(torch.empty(self.num_heads))
        self.norm = GatedRMSNorm(self.inner, self.n_groups, self.eps)
        self.out_proj = nn.Linear(self.inner, cfg.hidden_size, bias=cfg.mamba_bias)
        # One-token steps on CUDA run the Triton decode kernels (kernels.mamba); False: the PyTorch path.
        self.fused_decode = True

    def forward(self, hidden: torch.Tensor, cache: MambaCache) -> torch.Tensor:
        """Mix `hidden` [1, L, H] continuing from `cache`, which is updated in place; return [1, L, H].

        A one-token step on CUDA runs the Triton decode kernels; longer CUDA inputs use the mamba-ssm
        Triton ops when they import; everything else the PyTorch path.
        """
        if hidden.shape[1] == 1 and self.fused_decode and mamba_decode.supported(hidden):
            return self._decode_step(hidden, cache)
        z, xbc, dt = self.in_proj(hidden).split([self.inner, self.conv_dim, self.num_heads], dim=-1)
        xbc = self._conv(xbc, cache)  # [1, L, conv_dim]
        ops = fused_ops(hidden.device)
        if ops is None:
            y = self.norm(self._ssm_torch(xbc, dt, cache), z)
        else:
            y = ops.gated_rms_norm(
                self._ssm_fused(ops, xbc, dt, cache),
                self.norm.weight,
                None,
                z=z,
                eps=self.eps,
                group_size=self.inner // self.n_groups,
                norm_before_gate=False,
            )
        return self.out_proj(y.to(hidden.dtype))

    def _decode_step(self, hidden: torch.Tensor, cache: MambaCache) -> torch.Tensor:
        """One token [1, 1, H] through the three decode kernels (conv, state update, gated norm)."""
        z, xbc, dt = self.in_proj(hidden).reshape(-1).split([self.inner, self.conv_dim, self.num_heads])
        xbc = mamba_decode.conv_step(xbc, cache.conv[0], self.conv1d.weight[:, 0], self.conv1d.bias)
        groups_n = self.n_groups * self.state_size
        x, b, c = xbc.split([self.inner, groups_n, groups_n])
        y = mamba_decode.ssm_step_fused(
            x, dt, b, c, cache.ssm[0], self.A_log, self.D, self.dt_bias, self.time_step_limit
        )
        y = mamba_decode.gated_rms_norm_rows(y, z, self.norm.weight, self.n_groups, self.eps, hidden.dtype)
        return self.out_proj(y.view(1, 1, self.inner))

    def _split_xbc(self, xbc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[1, L, conv_dim] -> x [L, nh, P], B and C [L, G, N] (views, input dtype)."""
        length = xbc.shape[1]
        groups_n = self.n_groups * self.state_size
        x, b, c = xbc[0].split([self.inner, groups_n, groups_n], dim=-1)
        x = x.reshape(length, self.num_heads, self.head_dim)
        return x, b.reshape(length, self.n_groups, -1), c.reshape(length, self.n_groups, -1)

    def _dt(self, dt: torch.Tensor) -> torch.Tensor:
        """Raw dt [L, nh] -> softplus(dt + dt_bias), clamped by the config's time_step_limit if any; fp32."""
        dt = F.softplus(dt.float() + self.dt_bias.float())
        if self.time_step_limit is not None:
            dt = dt.clamp(*self.time_step_limit)
        return dt

    def _ssm_torch(self, xbc: torch.Tensor, dt: torch.Tensor, cache: MambaCache) -> torch.Tensor:
        """The selective SSM plus the D skip in fp32 PyTorch; updates cache.ssm; returns y [1, L, I]."""
        x, b, c = (t.float() for t in self._split_xbc(xbc))
        dt = self._dt(dt[0])  # [L, nh]
        a = -torch.exp(self.A_log.float())
        # A copy, because the cache is overwritten below while autograd (training) may still need it.
        initial = cache.ssm[0].clone()
        if x.shape[0] == 1:
            y, new_ssm = ssm_step(x[0], dt[0], a, b[0], c[0], initial)
            y = y[None]
        else:
            y, new_ssm = ssd_scan(x, dt, a, b, c, self.chunk_size, initial)
        cache.ssm[0].copy_(new_ssm)
        y = y + x * self.D.float()[:, None]
        return y.reshape(1, x.shape[0], self.inner)

    def _ssm_fused(
        self, ops: MambaSsmOps, xbc: torch.Tensor, dt: torch.Tensor, cache: MambaCache
    ) -> torch.Tensor:
        """The same as `_ssm_torch` through mamba-ssm's chunked scan or state update; returns [1, L, I]."""
        x, b, c = self._split_xbc(xbc)
        a = -torch.exp(self.A_log.float())
        length = x.shape[0]
        if length == 1:
            return self._step_fused(ops, x, b, c, dt, a, cache).reshape(1, 1, self.inner)
        y, final = ops.chunk_scan(
            x[None],
            dt,
            a,
            b[None],
            c[None],
            self.chunk_size,
            D=self.D,
            dt_bias=self.dt_bias,
            initial_states=cache.ssm,
            dt_softplus=True,
            dt_limit=self.time_step_limit or (0.0, float("inf")),
            return_final_states=True,
        )
        cache.ssm.copy_(final)
        return y.reshape(1, length, self.inner)

    def _step_fused(self, ops: MambaSsmOps, x, b, c, dt, a, cache: MambaCache) -> torch.Tensor:
        """One decode step with `selective_state_update`, which updates cache.ssm [1, nh, P, N] in place.

        The op has no dt clamp, so dt is finished here (softplus, bias, clamp) and the op's own bias is
        zero; per-head values are broadcast over head_dim with stride-0 views, as the op expects.
        """
        heads, head_dim, state = self.num_heads, self.head_dim, self.state_size
        dt = self._dt(dt[0])  # [1, nh]
        return ops.state_update(
            cache.ssm,
            x,  # [1, nh, P]
            dt[:, :, None].expand(1, heads, head_dim),
            a[:, None, None].expand(heads, head_dim, state),
            b,  # [1, G, N]
            c,
            D=self.D.float()[:, None].expand(heads, head_dim),
            z=None,
            dt_bias=dt.new_zeros(heads)[:, None].expand(heads, head_dim),
            dt_softplus=False,
        )

    def _conv(self, xbc: torch.Tensor, cache: MambaCache) -> torch.Tensor:
        """Causal depthwise conv + SiLU of `xbc` [1, L, C] after the cached window; update the window."""
        window = cache.conv.shape[-1]
        full = torch.cat([cache.conv, xbc.transpose(1, 2)], dim=-1)  # [1, C, window + L]
        cache.conv.copy_(full[:, :, full.shape[-1] - window :])
        out = F.conv1d(full, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)
        return F.silu(out).transpose(1, 2)


def ssm_step(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, ssm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance the SSM by one token; return (y [nh, P], new state [nh, P, N]), all fp32.

    x [nh, P], dt [nh], a [nh], b and c [G, N], ssm [nh, P, N]. `y` excludes the D skip.
    """
    heads_per_group = x.shape[0] // b.shape[0]
    b = b.repeat_interleave(heads_per_group, dim=0)  # [nh, N]
    c = c.repeat_interleave(heads_per_group, dim=0)
    decay = torch.exp(dt * a)[:, None, None]
    new_ssm = ssm * decay + (dt[:, None] * x)[:, :, None] * b[:, None, :]
    y = torch.einsum("hpn,hn->hp", new_ssm, c)
    return y, new_ssm


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    chunk_size: int,
    initial: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the selective SSM over a sequence in chunks (SSD); return (y [L, nh, P], final state).

    x [L, nh, P], dt [L, nh], a [nh], b and c [L, G, N], initial [nh, P, N]; all fp32. Within a chunk the
    output is a masked "attention" of C against B; across chunks only the state [nh, P, N] is carried,
    so the cost is linear in L. `y` excludes the D skip.
    """
    length, heads, _ = x.shape
    heads_per_group = heads // b.shape[1]
    b = b.repeat_interleave(heads_per_group, dim=1)  # [L, nh, N]
    c = c.repeat_interleave(heads_per_group, dim=1)
    pad = (-length) % chunk_size
    xdt, adt, b, c = (_chunked(t, pad, chunk_size) for t in (x * dt[..., None], dt * a, b, c))
    # adt: [n_chunks, Q, nh]; cumulative log-decay inside each chunk.
    a_cum = torch.cumsum(adt, dim=1)
    y_diag = _intra_chunk(xdt, adt, b, c)
    # Each chunk's own contribution to the state at its end.
    decay_to_end = torch.exp(a_cum[:, -1:] - a_cum)  # [n, Q, nh]
    chunk_states = torch.einsum("clhn,clh,clhp->chpn", b, decay_to_end, xdt)
    starts, final = _carry_states(chunk_states, torch.exp(a_cum[:, -1]), initial)
    y_off = torch.einsum("clhn,chpn,clh->clhp", c, starts, torch.exp(a_cum))
    y = (y_diag + y_off).reshape(-1, heads, x.shape[-1])[:length]
    return y, final


def _chunked(t: torch.Tensor, pad: int, chunk_size: int) -> torch.Tensor:
    """Zero-pad `t` [L, ...] along L to a multiple of `chunk_size` and split: [n_chunks, Q, ...]."""
    if pad:
        t = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))])
    return t.reshape(-1, chunk_size, *t.shape[1:])


def _intra_chunk(xdt: torch.Tensor, adt: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Outputs from tokens of the same chunk: y[l] = sum_{s<=l} (C_l . B_s) exp(sum_{s<r<=l} a dt_r) xdt_s."""
    decay = torch.exp(_segment_sum(adt.transpose(1, 2)))  # [n, nh, Q, Q]
    scores = torch.einsum("clhn,cshn->chls", c, b) * decay
    return torch.einsum("chls,cshp->clhp", scores, xdt)


def _segment_sum(v: torch.Tensor) -> torch.Tensor:
    """out[..., l, s] = sum(v[..., s+1 : l+1]) for s <= l, -inf above the diagonal; v [..., Q].

    Built from masked cumulative sums, not differences of a prefix sum, to stay exact for long chunks.
    """
    q = v.shape[-1]
    strictly_below = torch.tril(torch.ones(q, q, dtype=torch.bool, device=v.device), diagonal=-1)
    # rows[..., i, s] = v[..., i], kept only where i > s; summing down the rows gives sum(v[s+1 : l+1]).
    rows = v[..., None].expand(*v.shape, q).masked_fill(~strictly_below, 0.0)
    sums = torch.cumsum(rows, dim=-2)
    on_or_below = torch.tril(torch.ones(q, q, dtype=torch.bool, device=v.device))
    return sums.masked_fill(~on_or_below, -torch.inf)


def _carry_states(
    chunk_states: torch.Tensor, chunk_decay: torch.Tensor, initial: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propagate the state across chunks; return (state at each chunk start [n, nh, P, N], final state).

    chunk_states [n, nh, P, N], chunk_decay [n, nh] (total decay over each chunk), initial [nh, P, N].
    """
    starts = []
    state = initial
    for i in range(chunk_states.shape[0]):
        starts.append(state)
        state = state * chunk_decay[i][:, None, None] + chunk_states[i]
    return torch.stack(starts), state


class GatedRMSNorm(nn.Module):
    """Gated RMSNorm of Nemotron-H's Mamba output (gate applied before the norm, grouped)."""

    def __init__(self, size: int, n_groups: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size))
        self.n_groups = n_groups
        self.eps = eps

    def forward(self, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Normalize `y` [..., I] gated by `gate` [..., I]; return fp32 [..., I]."""
        return gated_rms_norm(y, gate, self.weight, self.n_groups, self.eps)


def gated_rms_norm(
    y: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, n_groups: int, eps: float
) -> torch.Tensor:
    """Gate then normalize: rms-norm of `y * silu(gate)` over groups of I/G channels, times `weight`.

    y, gate [..., I]; returns fp32 [..., I].
    """
    y = y.float() * F.silu(gate.float())
    grouped = y.reshape(*y.shape[:-1], n_groups, -1)
    grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + eps)
    return grouped.reshape(y.shape) * weight.float()
