"""The Triton Mamba-2 decode step computes the PyTorch path's function (output, conv window, SSM state).

In CI the kernels run under the Triton CPU interpreter in a subprocess (``TRITON_INTERPRET`` must be set
before Triton is imported), fp32; on CUDA (marked ``gpu``) in bf16 at the 30B Mamba sizes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import torch

CHECK = r"""
import copy, sys, torch
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import random_model, tiny_config, nano_30b_config

def check(raw, seed, device, dtype, tol):
    cfg = HybridConfig.from_dict(raw)
    model = random_model(cfg, device="cpu", dtype=dtype, seed=seed).to(device)
    mixer = model.layers[cfg.layer_kinds.index("M")].mixer
    fused, ref = (HybridState.empty(cfg, 64, device=device, dtype=dtype) for _ in range(2))
    i = cfg.layer_kinds.index("M")
    gen = torch.Generator().manual_seed(seed)
    conv = torch.randn(fused.layers[i].conv.shape, generator=gen).to(device, dtype)
    ssm = torch.randn(fused.layers[i].ssm.shape, generator=gen).to(device)
    for s in (fused, ref):
        s.layers[i].conv.copy_(conv)
        s.layers[i].ssm.copy_(ssm)
    with torch.inference_mode():
        for step in range(4):
            hidden = torch.randn(1, 1, cfg.hidden_size, generator=gen).to(device, dtype)
            mixer.fused_decode = True
            got = mixer(hidden, fused.layers[i])
            mixer.fused_decode = False
            want = mixer(hidden, ref.layers[i])
            for a, b, what in ((got, want, "out"), (fused.layers[i].conv, ref.layers[i].conv, "conv"),
                               (fused.layers[i].ssm, ref.layers[i].ssm, "ssm")):
                err = float((a.float() - b.float()).norm() / b.float().norm())
                assert err < tol, (what, step, err)

seed = int(sys.argv[1])
for overrides in ({}, {"time_step_limit": [0.01, 0.5]}):
    check(tiny_config(**overrides), seed, sys.argv[2], getattr(torch, sys.argv[3]), float(sys.argv[4]))
if sys.argv[2] == "cuda":
    check(nano_30b_config(num_hidden_layers=4, hybrid_override_pattern="M*EM"), seed, "cuda", torch.bfloat16, 2e-2)
print("ok")
"""


def _run(device: str, dtype: str, tol: float, interpret: bool) -> None:
    seed = random.SystemRandom().randrange(2**31)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(seed), device, dtype, str(tol)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"seed={seed}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip().endswith("ok")


def test_mamba_decode_kernels_match_the_torch_path_under_interpreter():
    _run("cpu", "float32", 1e-5, interpret=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mamba_decode_kernels_match_the_torch_path_on_cuda():
    _run("cuda", "bfloat16", 2e-2, interpret=False)


NORM_CHECK = r"""
import sys, torch
from superlinear.adapters.hybrid.model import RMSNorm
from superlinear.kernels.norms import rms_norm
torch.manual_seed(int(sys.argv[1]))
for rows, size in ((1, 96), (7, 100), (3, 2688)):
    norm = RMSNorm(size, 1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(1, rows, size) * 3
    err = float((rms_norm(x, norm.weight, 1e-5) - norm(x)).norm() / norm(x).norm())
    assert err < 1e-6, (rows, size, err)
print("ok")
"""


def test_rms_norm_kernel_matches_the_torch_norm_under_interpreter(interpreted):
    interpreted(NORM_CHECK)
