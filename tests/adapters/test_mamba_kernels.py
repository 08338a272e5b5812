"""The mamba-ssm fast path: chosen per call by device, never imported eagerly, called with its contract.

mamba-ssm needs CUDA, so these tests stand its three ops in with fakes that follow mamba-ssm's documented
signatures and shape assertions and compute its reference semantics token by token; the mixer is then
routed through them on CPU and must give the PyTorch path's logits.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from superlinear.adapters.hybrid import mamba_kernels
from superlinear.adapters.hybrid.mamba_kernels import MambaSsmOps, fused_ops
from superlinear.adapters.hybrid.testing import (
    feed,
    load_checkpoint,
    random_ids,
    tiny_config,
    write_random_checkpoint,
)


def fake_chunk_scan(
    x,
    dt,
    A,
    B,
    C,
    chunk_size,
    D=None,
    z=None,
    dt_bias=None,
    initial_states=None,
    seq_idx=None,
    dt_softplus=False,
    dt_limit=(0.0, float("inf")),
    return_final_states=False,
):
    """mamba_chunk_scan_combined: x [b, L, h, p], dt [b, L, h], A [h], B/C [b, L, g, n], D [h]."""
    batch, length, heads, head_dim = x.shape
    groups, n = B.shape[2], B.shape[3]
    assert dt.shape == (batch, length, heads) and A.shape == (heads,) and C.shape == B.shape
    assert B.shape[:2] == (batch, length) and initial_states.shape == (batch, heads, head_dim, n)
    assert D.shape == (heads,) and dt_bias.shape == (heads,) and z is None and seq_idx is None
    dt = dt.float() + dt_bias.float()
    dt = F.softplus(dt) if dt_softplus else dt
    dt = dt.clamp(*dt_limit)
    state = initial_states.float().clone()
    outs = []
    for t in range(length):
        bt = B[:, t].float().repeat_interleave(heads // groups, 1)  # [b, h, n]
        ct = C[:, t].float().repeat_interleave(heads // groups, 1)
        xt = x[:, t].float()
        state = (
            state * torch.exp(dt[:, t] * A)[..., None, None]
            + (dt[:, t, :, None] * xt)[..., None] * bt[:, :, None]
        )
        outs.append((state * ct[:, :, None]).sum(-1) + xt * D.float()[:, None])
    out = torch.stack(outs, 1).to(x.dtype)
    return (out, state) if return_final_states else out


def fake_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """selective_state_update with heads: state [b, h, p, n] updated in place; returns [b, h, p]."""
    batch, heads, head_dim, n = state.shape
    assert x.shape == (batch, heads, head_dim) and dt.shape == x.shape and A.shape == (heads, head_dim, n)
    assert B.shape[0] == batch and B.shape[2] == n and C.shape == B.shape and z is None
    assert D.shape == (heads, head_dim) and dt_bias.shape == (heads, head_dim)
    # The Triton kernel reads dt_bias and A through strides; the mixer passes broadcast (stride-0) views.
    assert dt_bias.stride(-1) == 0 and A.stride(-1) == 0 and A.stride(-2) == 0
    dt = dt.float() + dt_bias.float()
    dt = F.softplus(dt) if dt_softplus else dt
    rep = heads // B.shape[1]
    b, c = B.float().repeat_interleave(rep, 1), C.float().repeat_interleave(rep, 1)
    state.copy_(state * torch.exp(dt[..., None] * A) + dt[..., None] * b[:, :, None] * x.float()[..., None])
    out = (state * c[:, :, None]).sum(-1) + x.float() * D
    return out.to(x.dtype)


def fake_rmsnorm_fn(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
    """layernorm_gated.rmsnorm_fn: RMS over groups of `group_size`, gate before the norm when asked."""
    assert bias is None and not norm_before_gate and x.shape == z.shape
    y = x.float() * F.silu(z.float())
    grouped = y.reshape(*y.shape[:-1], -1, group_size)
    grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + eps)
    return (grouped.reshape(y.shape) * weight.float()).to(x.dtype)


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture()
def fake_ops(monkeypatch):
    """Route CPU tensors through fake mamba-ssm ops."""
    ops = MambaSsmOps(Counting(fake_chunk_scan), Counting(fake_state_update), Counting(fake_rmsnorm_fn))
    monkeypatch.setattr(mamba_kernels, "FUSED_DEVICE_TYPES", frozenset({"cpu"}))
    monkeypatch.setattr(mamba_kernels, "load_mamba_ssm", lambda: ops)
    return ops


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # A finite time_step_limit, so the decode step's own clamp is exercised too.
    raw = tiny_config("nemotron_h", time_step_limit=[0.0, 0.08])
    return write_random_checkpoint(tmp_path_factory.mktemp("mamba"), raw, 11)


def test_the_fused_path_gives_the_torch_path_logits_over_chunks_and_decode(model_dir, monkeypatch, fake_ops):
    model = load_checkpoint(model_dir)
    ids = random_ids(45, seed=8)
    with monkeypatch.context() as plain:
        plain.setattr(mamba_kernels, "FUSED_DEVICE_TYPES", frozenset())
        expected, _ = feed(model, ids, [20, 19, 1, 1, 1, 1, 1, 1])
    got, _ = feed(model, ids, [20, 19, 1, 1, 1, 1, 1, 1])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    mamba_layers = model.config.layer_kinds.count("M")
    assert fake_ops.chunk_scan.calls == 2 * mamba_layers and fake_ops.state_update.calls == 6 * mamba_layers
    assert fake_ops.gated_rms_norm.calls == 8 * mamba_layers


def test_cpu_tensors_never_take_the_fused_path_even_when_it_imports(monkeypatch):
    monkeypatch.setattr(mamba_kernels, "load_mamba_ssm", lambda: pytest.fail("must not be consulted for CPU"))
    assert fused_ops(torch.device("cpu")) is None


def test_a_missing_or_broken_mamba_ssm_means_the_torch_path(monkeypatch):
    mamba_kernels.load_mamba_ssm.cache_clear()
    # None in sys.modules makes the import raise, as a missing or broken package does.
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)
    try:
        assert mamba_kernels.load_mamba_ssm() is None
        assert fused_ops(torch.device("cuda")) is None
    finally:
        mamba_kernels.load_mamba_ssm.cache_clear()


def test_importing_and_running_the_model_on_cpu_never_imports_mamba_ssm(tmp_path):
    code = (
        "import sys, torch; from superlinear.adapters.hybrid.testing import *; "
        f"d = write_random_checkpoint({str(tmp_path)!r}, tiny_config(), 1); "
        "feed(load_checkpoint(d), random_ids(5)); print('mamba_ssm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
