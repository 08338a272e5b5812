"""How much memory session state may use by default on a device."""

from __future__ import annotations

import os

import torch

__all__ = ["default_kv_budget", "HEADROOM_FRACTION"]

# Left free for prefill working memory (activations of a chunk, attention temporaries) and the allocator.
HEADROOM_FRACTION = 0.2


def _available_host_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def default_kv_budget(device: str | torch.device) -> int:
    """Return the bytes sessions may hold: free memory on `device` now (after the weights), less headroom.

    Call it after the model is loaded, so the weights are already counted as used.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
    else:
        free = _available_host_bytes()
    return int(free * (1.0 - HEADROOM_FRACTION))
