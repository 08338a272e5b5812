"""Fixtures of the hybrid-model adapter tests: tiny random checkpoints written once per session."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from superlinear.adapters.hybrid.testing import random_weights, tiny_config, write_checkpoint

SEED = 1234


@pytest.fixture(scope="session")
def hybrid_weights() -> dict[str, torch.Tensor]:
    """Random weights of the tiny superlinear-exp model under on-disk names (Q1 as `q1_proj`)."""
    return random_weights(tiny_config("superlinear-exp"), SEED)


@pytest.fixture(scope="session")
def superlinear_dir(tmp_path_factory, hybrid_weights) -> Path:
    """The tiny superlinear-exp checkpoint."""
    return write_checkpoint(
        tmp_path_factory.mktemp("superlinear"), tiny_config("superlinear-exp"), hybrid_weights
    )


@pytest.fixture(scope="session")
def dense_dir(tmp_path_factory, hybrid_weights) -> Path:
    """The tiny nemotron_h checkpoint: the same weights without Q1."""
    weights = {k: v for k, v in hybrid_weights.items() if "q1_proj" not in k}
    return write_checkpoint(tmp_path_factory.mktemp("dense"), tiny_config("nemotron_h"), weights)


@pytest.fixture
def interpreted():
    """Return a runner: `(script, *args)` runs `python -c script SEED *args` with `TRITON_INTERPRET=1` and one
    torch thread, from a fresh seed (shown on failure), and checks that it exits 0 printing "ok" last."""

    def run(script: str, *args: str) -> None:
        seed = random.SystemRandom().randrange(2**31)
        env = dict(os.environ, OMP_NUM_THREADS="1", TRITON_INTERPRET="1")
        result = subprocess.run([sys.executable, "-c", script, str(seed), *args], env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"seed={seed}\n{result.stdout}\n{result.stderr}"
        assert result.stdout.strip().endswith("ok")

    return run
