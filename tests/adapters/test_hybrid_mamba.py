"""The Mamba-2 mixer against a plain token-by-token recurrence written here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.mamba import Mamba2Mixer, ssd_scan
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import random_weights, tiny_config


def naive_scan(x, dt, a, b, c, state):
    """h_t = exp(dt_t a) h_{t-1} + dt_t x_t B_t^T; y_t = h_t C_t, one token at a time (heads share groups)."""
    heads_per_group = x.shape[1] // b.shape[1]
    ys = []
    for t in range(x.shape[0]):
        bt = b[t].repeat_interleave(heads_per_group, 0)
        ct = c[t].repeat_interleave(heads_per_group, 0)
        state = (
            torch.exp(dt[t] * a)[:, None, None] * state
            + dt[t][:, None, None] * x[t][:, :, None] * bt[:, None]
        )
        ys.append((state * ct[:, None]).sum(-1))
    return torch.stack(ys), state


@pytest.mark.parametrize("length, chunk", [(1, 4), (37, 8), (64, 16), (50, 64)])
def test_the_chunked_scan_equals_the_sequential_recurrence(length, chunk):
    gen = torch.Generator().manual_seed(length)
    heads, p, groups, n = 6, 5, 3, 7
    x = torch.randn(length, heads, p, generator=gen)
    dt = torch.rand(length, heads, generator=gen) * 0.5
    a = -torch.rand(heads, generator=gen) * 4
    b = torch.randn(length, groups, n, generator=gen)
    c = torch.randn(length, groups, n, generator=gen)
    initial = torch.randn(heads, p, n, generator=gen)
    y, final = ssd_scan(x, dt, a, b, c, chunk, initial)
    y_ref, final_ref = naive_scan(x, dt, a, b, c, initial)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, final_ref, atol=1e-5, rtol=1e-5)


def naive_mixer(mixer: Mamba2Mixer, hidden: torch.Tensor) -> torch.Tensor:
    """The whole mixer from its weights, token by token, as MODELS.md describes it."""
    inner, conv_dim, nh = mixer.inner, mixer.conv_dim, mixer.num_heads
    z, xbc, dt = mixer.in_proj(hidden[0]).split([inner, conv_dim, nh], dim=-1)
    k = mixer.conv1d.weight.shape[-1]
    padded = torch.cat([torch.zeros(k - 1, conv_dim), xbc])
    conv = torch.stack([(padded[t : t + k].T * mixer.conv1d.weight[:, 0]).sum(-1) for t in range(len(xbc))])
    xbc = F.silu(conv + mixer.conv1d.bias)
    gn = mixer.n_groups * mixer.state_size
    x, b, c = xbc.split([inner, gn, gn], dim=-1)
    x = x.reshape(-1, nh, mixer.head_dim)
    dt = F.softplus(dt + mixer.dt_bias)
    state = torch.zeros(nh, mixer.head_dim, mixer.state_size)
    b, c = b.reshape(-1, mixer.n_groups, mixer.state_size), c.reshape(-1, mixer.n_groups, mixer.state_size)
    y, _ = naive_scan(x, dt, -torch.exp(mixer.A_log), b, c, state)
    y = (y + x * mixer.D[:, None]).reshape(-1, inner) * F.silu(z)
    groups = y.reshape(len(y), mixer.n_groups, -1)
    y = (groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + mixer.eps)).reshape(len(y), inner)
    return mixer.out_proj(y * mixer.norm.weight)[None]


def make_mixer() -> tuple[Mamba2Mixer, HybridConfig]:
    raw = tiny_config()
    cfg = HybridConfig.from_dict(raw)
    weights = random_weights(raw, 7)
    mixer = Mamba2Mixer(cfg)
    prefix = "backbone.layers.0.mixer."
    mixer.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
    return mixer, cfg


@torch.inference_mode()
def test_the_mixer_equals_the_naive_mixer_over_prefill_chunks_and_decode_steps():
    mixer, cfg = make_mixer()
    hidden = torch.randn(1, 45, cfg.hidden_size, generator=torch.Generator().manual_seed(3))
    expected = naive_mixer(mixer, hidden)
    cache = HybridState.empty(cfg, 100, device="cpu", dtype=torch.float32).layers[0]
    # Chunks shorter than the conv window and than the scan chunk, then single-token decode steps.
    pieces, start = [], 0
    for size in (2, 17, 1, 20, 1, 1, 1, 1, 1):
        pieces.append(mixer(hidden[:, start : start + size], cache))
        start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=1e-5, rtol=1e-4)
