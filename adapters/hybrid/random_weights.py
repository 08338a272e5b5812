"""Random weights drawn on the device, and checkpoint directories that ask for them (benchmarks only).

A directory with `config.json` and a `random_weights.json` marker (and no safetensors) loads as the model
of that config with random weights drawn directly on the device from the marker's seed: the full-size
shapes can be served without writing tens of GiB of weights to disk. Such a model says nothing about a
real model's outputs, so loading one is refused unless `SPL_ALLOW_RANDOM_WEIGHTS=1` is set, every load
is logged as a warning, and its weights fingerprint starts with `random:` (it hashes the marker and the
device type, since CPU and CUDA generators draw different numbers from one seed), so its snapshots never
mix with a real checkpoint's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import torch

from .config import HybridConfig
from .loader import CheckpointError, param_dtype
from .model import HybridLM

__all__ = [
    "ALLOW_ENV",
    "MARKER",
    "is_random_checkpoint",
    "load_random",
    "random_model",
    "write_marker",
]

log = logging.getLogger(__name__)

MARKER = "random_weights.json"
ALLOW_ENV = "SPL_ALLOW_RANDOM_WEIGHTS"
_FORMAT = "superlinear-random-weights"


def write_marker(directory: str | Path, seed: int) -> Path:
    """Write the marker asking for random weights drawn from `seed` into `directory`; return its path."""
    path = Path(directory) / MARKER
    body = {"format": _FORMAT, "seed": int(seed), "note": "benchmark use only: random weights, no checkpoint"}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def is_random_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds the random-weights marker."""
    return (Path(directory) / MARKER).is_file()


def _read_marker(directory: Path) -> tuple[int, bytes]:
    """Return (seed, marker bytes); raise CheckpointError for a malformed marker or one beside real weights."""
    path = directory / MARKER
    data = path.read_bytes()
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    body = body if isinstance(body, dict) else {}
    seed = body.get("seed")
    if body.get("format") != _FORMAT or not isinstance(seed, int) or isinstance(seed, bool):
        raise CheckpointError(f"{path} is not a random-weights marker (format {_FORMAT!r}, integer seed)")
    weights = sorted(p.name for p in directory.glob("*.safetensors*"))
    if weights:
        raise CheckpointError(f"{directory} holds both {MARKER} and weights {weights}: remove one")
    return seed, data


def load_random(
    directory: str | Path, cfg: HybridConfig, *, dtype: torch.dtype, device: torch.device | str
) -> tuple[HybridLM, str]:
    """Build the model of a random-weights directory on `device`; return (model, weights fingerprint).

    Refused (CheckpointError) unless the environment has SPL_ALLOW_RANDOM_WEIGHTS=1.
    """
    directory = Path(directory)
    if os.environ.get(ALLOW_ENV) != "1":
        raise CheckpointError(
            f"{directory} asks for random weights ({MARKER}): that is for benchmarks only; "
            f"set {ALLOW_ENV}=1 to load it"
        )
    seed, data = _read_marker(directory)
    device = torch.device(device)
    log.warning("RANDOM WEIGHTS: %s is served with random weights (seed %d) on %s, benchmark use only",
                directory, seed, device)
    with torch.no_grad():
        model = random_model(cfg, device=device, dtype=dtype, seed=seed)
    digest = hashlib.sha256(data + f"\ndevice={device.type}".encode()).hexdigest()
    return model, f"random:{digest}"


def random_model(
    cfg: HybridConfig, *, device: torch.device | str, dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> HybridLM:
    """Build the model for `cfg` with random weights created directly on `device` (no checkpoint).

    Weights follow `random_weights`' distributions and the loader's dtype policy (router, A_log, dt_bias,
    D and norms in fp32), and each tensor is drawn in place, so peak memory is the model itself.
    """
    with torch.device("meta"):
        model = HybridLM(cfg)
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    tensors = {
        name: _random_param(name, tuple(p.shape), gen, device, param_dtype(name, dtype))
        for name, p in model.named_parameters()
    }
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _random_param(
    name: str, shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One parameter of `random_model`, chosen by its name's suffix."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float32) * (high - low) + low

    def normal(std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device, dtype=dtype).mul_(std)

    if name.endswith("A_log"):
        return uniform(1.0, 16.0).log_().to(dtype)
    if name.endswith("dt_bias"):
        dt = uniform(math.log(0.01), math.log(0.3)).exp_()
        # Inverse softplus, so softplus(dt_bias) = dt.
        return (dt + torch.log(-torch.expm1(-dt))).to(dtype)
    if name.endswith((".D", "norm.weight", "norm_f.weight")):
        return uniform(0.5, 1.5).to(dtype)
    if name.endswith("e_score_correction_bias"):
        return uniform(-0.1, 0.1).to(dtype)
    if name.endswith("embeddings.weight"):
        return normal(1.0)
    if name.endswith("conv1d.weight"):
        return normal(shape[-1] ** -0.5)
    if name.endswith("conv1d.bias"):
        return normal(0.1)
    if name.endswith(".bias"):
        return torch.zeros(shape, device=device, dtype=dtype)
    # Linear weights, stacked experts included: fan-in scaling keeps activations of order one.
    return normal(shape[-1] ** -0.5)
