"""How many CPU threads torch's operators use in the engine (intra-op parallelism).

The default model is small: its matrices are too narrow for several threads to pay for their
synchronisation, and on a shared machine extra threads contend with the HTTP threads and each other.
benchmarks/RESULTS.md ("Engine thread count") has the measurement behind the default.
"""

from __future__ import annotations

import os

import torch

__all__ = ["DEFAULT_TORCH_THREADS", "resolve_torch_threads", "set_torch_threads"]

DEFAULT_TORCH_THREADS = 1


def resolve_torch_threads(value: int | None) -> int:
    """Return the thread count to use: `value`, else $SPL_TORCH_THREADS, else the default; 0 means all cores."""
    if value is None:
        env = os.environ.get("SPL_TORCH_THREADS", "").strip()
        value = int(env) if env else DEFAULT_TORCH_THREADS
    if value < 0:
        raise ValueError(f"torch threads must be 0 (all cores) or a positive number, not {value}")
    return value or (os.cpu_count() or 1)


def set_torch_threads(count: int) -> int:
    """Set torch's intra-op threads for the calling thread (and the process default); return the count."""
    torch.set_num_threads(count)
    return torch.get_num_threads()
