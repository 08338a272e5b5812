"""Shared fixtures of the kernel reference tests: a fresh seed per test, inputs, parameters, comparisons."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from superlinear.kernels import SuperlinearParams

RELEASED = SuperlinearParams(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
SEED_EXAMPLE = SuperlinearParams(
    sw_index=3, num_spans=3, backward_factor=3.0, forward_factor=1.0, inv_search_power_int=2
)


@pytest.fixture(autouse=True)
def rng() -> random.Random:
    """Seed torch and return a Python RNG from a fresh random seed, printed so a failure can be replayed."""
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    torch.manual_seed(seed)
    return random.Random(seed)


@pytest.fixture(autouse=True)
def single_thread():
    """Run each test on one intra-op thread, restoring the setting afterwards.

    These tensors are small, so OpenMP threads add only synchronisation, which stalls badly when the
    2-core machine is busy with other work.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def released() -> SuperlinearParams:
    """The released model's configuration (window 2032)."""
    return RELEASED


@pytest.fixture
def seed_example() -> SuperlinearParams:
    """The seed README's example configuration (window 15)."""
    return SEED_EXAMPLE


@pytest.fixture
def make_inputs():
    """Return ``make(B, HQ, HKV, L, D, dtype=torch.float32) -> (Q1, Q2, K, V)`` with fresh N(0, 1) values."""

    def make(batch, q_heads, kv_heads, length, dim, dtype=torch.float32):
        q1, q2 = torch.randn(2, batch, q_heads, length, dim, dtype=torch.float64).unbind(0)
        k, v = torch.randn(2, batch, kv_heads, length, dim, dtype=torch.float64).unbind(0)
        return tuple(x.to(dtype) for x in (q1, q2, k, v))

    return make


def relative_errors(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """Return (max-abs error, error RMS relative to the expected RMS)."""
    actual, expected = actual.double(), expected.double()
    diff = actual - expected
    max_abs = diff.abs().max().item() if diff.numel() else 0.0
    rms = diff.pow(2).mean().sqrt().item() if diff.numel() else 0.0
    scale = expected.pow(2).mean().sqrt().item() if expected.numel() else 1.0
    return max_abs, rms / max(scale, 1e-30)


@pytest.fixture
def assert_close():
    """Return ``check(actual, expected, max_abs, rel_rms)``: fails on NaN, shape or tolerance mismatch."""

    def check(actual, expected, max_abs=1e-5, rel_rms=1e-5):
        assert actual.shape == expected.shape, (actual.shape, expected.shape)
        assert torch.isfinite(actual.double()).all(), "output has NaN or inf"
        err_abs, err_rms = relative_errors(actual, expected)
        assert err_abs <= max_abs and err_rms <= rel_rms, f"max-abs {err_abs:.3g}, relative RMS {err_rms:.3g}"

    return check


@pytest.fixture(scope="session")
def run_interpreter_cases():
    """Return a runner: `(checks_script, cases)` runs every case in one fresh `TRITON_INTERPRET=1` process with
    a fresh seed (printed) and returns name -> the result the script printed for it."""

    def run(script: Path, cases: dict[str, dict]) -> dict:
        names = list(cases)
        env = dict(os.environ, TRITON_INTERPRET="1")
        seed = str(random.SystemRandom().randrange(2**31))
        print(f"interpreter seed={seed}")
        done = subprocess.run([sys.executable, str(script), json.dumps([cases[n] for n in names]), seed],
                              capture_output=True, text=True, env=env, timeout=240)
        assert done.returncode == 0, done.stderr[-4000:]
        return dict(zip(names, json.loads(done.stdout.strip().splitlines()[-1]), strict=True))

    return run
