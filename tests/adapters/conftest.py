"""Fixtures of the hybrid-model adapter tests: tiny random checkpoints written once per session."""

from __future__ import annotations

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
