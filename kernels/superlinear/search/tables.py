"""Position tables of the Triton kernels: stripe offsets P(j) and span sizes b(t), f(t).

These depend only on positions, never on data, so they are computed once on the host with the exact
helpers of ``common.powers`` (the same values the reference uses) and kept on the device. The kernels then
look them up, which keeps every path integer-exact and lets decode run under a CUDA graph: a graph replay
reads the tables built before capture and never touches the host.
"""

from dataclasses import dataclass
from functools import lru_cache

import torch

from ...common.powers import ceil_scaled_power, stripe_offsets
from ..params import SuperlinearParams


@dataclass(frozen=True)
class RoutingTables:
    """Tables for queries at positions ``0 .. capacity - 1`` (so ``t = q + 1 - start <= capacity``).

    stripes: [NJ] int64, ``P(j)`` for ``j = sw_index + 1, ...`` while ``P(j) <= capacity`` (ascending);
    back, forward: [capacity + 1] int32, ``b(t)`` and ``f(t)`` clamped to ``capacity`` (a longer reach
    is cut by ``start`` or ``q`` anyway); window: ``W``; longest: the most keys a span or the window can
    hold at this capacity (``max(W, b + f + 1)``, b and f growing with t).
    """

    stripes: torch.Tensor
    back: torch.Tensor
    forward: torch.Tensor
    window: int
    capacity: int
    longest: int


def routing_tables(params: SuperlinearParams, capacity: int, device: torch.device) -> RoutingTables:
    """Return the (cached) tables of ``params`` for ``capacity`` keys on ``device``."""
    return _cached_tables(params, int(capacity), torch.device(device))


@lru_cache(maxsize=8)
def _cached_tables(params: SuperlinearParams, capacity: int, device: torch.device) -> RoutingTables:
    # Built on the host once per (params, capacity, device); a decode loop or a CUDA graph reuses them.
    stripes = stripe_offsets(params.stripe_exponent, params.sw_index + 1, capacity)
    t = torch.arange(capacity + 1, dtype=torch.int64)
    back = ceil_scaled_power(t, params.backward, params.span_exponent).clamp_max(capacity)
    forward = ceil_scaled_power(t, params.forward, params.span_exponent).clamp_max(capacity)
    return RoutingTables(
        stripes=stripes.to(device),
        back=back.to(torch.int32).to(device),
        forward=forward.to(torch.int32).to(device),
        window=params.window,
        capacity=capacity,
        longest=max(params.window, int(back[-1]) + int(forward[-1]) + 1),
    )


def prefill_capacity(kv_len: int) -> int:
    """Round ``kv_len`` up to a power of two, so a growing cache rebuilds its tables only log-many times."""
    return 1 << max(int(kv_len) - 1, 1).bit_length()
