"""Optional fast path for the Mamba-2 mixer: the Triton ops of `mamba-ssm`, on CUDA tensors only.

`mamba_ssm` is imported on the first call that could use it (never at module import), and the choice is
made per call from the tensor's device: CPU tensors always take the PyTorch path, CUDA tensors take the
Triton ops when the package imports cleanly. A `mamba-ssm` installed without its CUDA extension fails at
import; that counts as absent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import attrs
import torch

__all__ = ["FUSED_DEVICE_TYPES", "MambaSsmOps", "fused_ops", "load_mamba_ssm"]

log = logging.getLogger(__name__)

# Device types whose tensors the mamba-ssm Triton ops accept.
FUSED_DEVICE_TYPES = frozenset({"cuda"})


@attrs.frozen
class MambaSsmOps:
    """The three mamba-ssm ops the mixer uses, with mamba-ssm's own signatures."""

    chunk_scan: Callable[..., object]  # ssd_combined.mamba_chunk_scan_combined
    state_update: Callable[..., torch.Tensor]  # selective_state_update.selective_state_update
    gated_rms_norm: Callable[..., torch.Tensor]  # layernorm_gated.rmsnorm_fn


@functools.cache
def load_mamba_ssm() -> MambaSsmOps | None:
    """Import the mamba-ssm Triton ops once; None when the package is missing or broken."""
    try:
        from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception as exc:  # noqa: BLE001 - a broken CUDA build raises more than ImportError
        log.info(
            "mamba-ssm Triton ops unavailable (%s: %s); Mamba-2 runs the PyTorch path",
            type(exc).__name__,
            exc,
        )
        return None
    log.info("Mamba-2 layers use the mamba-ssm Triton ops on CUDA")
    return MambaSsmOps(mamba_chunk_scan_combined, selective_state_update, rmsnorm_fn)


def fused_ops(device: torch.device) -> MambaSsmOps | None:
    """Return the mamba-ssm ops for tensors on `device`, or None to use the PyTorch path."""
    if device.type not in FUSED_DEVICE_TYPES:
        return None
    return load_mamba_ssm()
