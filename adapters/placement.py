"""Where a model runs when the user does not say: the GPU in bfloat16 if there is one, else CPU in float32."""

from __future__ import annotations

import torch

__all__ = ["PlacementError", "resolve_placement"]


class PlacementError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_placement(device: str | None, dtype: str | None) -> tuple[str, str]:
    """Return (device, dtype) with defaults filled in; raise PlacementError for a device that is absent.

    No device: "cuda" when torch sees a CUDA device, else "cpu". No dtype: "bfloat16" on CUDA, else
    "float32". Given values are kept (checked only for existence: "cuda:N" needs N < the device count).
    """
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device is None:
        device = "cuda" if cuda_count else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise PlacementError(f"unknown device {device!r}: {exc}") from None
    if parsed.type == "cuda":
        index = parsed.index or 0
        if index >= cuda_count:
            found = f"{cuda_count} CUDA device(s)" if cuda_count else "no CUDA device (or a CPU-only torch)"
            raise PlacementError(f"device {device!r} was asked for, but this machine has {found}")
    if dtype is None:
        dtype = "bfloat16" if parsed.type == "cuda" else "float32"
    return device, dtype
