"""Random context access: check that every key before the window lies in some anchor's candidate span.

For a query at q with ``t = q + 1 - start`` valid tokens, the anchors ``a_j = q + 1 - P(j) >= start`` are
ordered, all spans have the same ``b(t)`` and ``f(t)``, and the nearest anchor is ``ws - 1``. So the
candidate spans cover ``[start, ws)`` exactly when

- consecutive anchors leave no gap: ``P(j + 1) - P(j) <= b(t) + f(t) + 1`` for every pair of valid anchors;
- the farthest anchor reaches ``start``: ``t - P(J) <= b(t)`` with ``J`` the last j with ``P(j) <= t``.

Everything is shift-invariant in ``start``, so checking ``start = 0`` and ``t = 1 .. length`` checks every
query of every sequence of at most ``length`` keys. The check is vectorised over ``t``.
"""

from dataclasses import dataclass

import torch

from ..common.powers import ceil_scaled_power, stripe_offsets
from .params import SuperlinearParams


@dataclass(frozen=True)
class CoverageReport:
    """The outcome of ``check_coverage``: ``ok``, how many query positions fail, and the first failure.

    ``first_query`` / ``first_key``: a query position (with ``start = 0``) and a key in ``[0, ws)`` that no
    candidate span of that query contains; None when ``ok``.
    """

    params: SuperlinearParams
    length: int
    ok: bool
    failing_queries: int
    first_query: int | None = None
    first_key: int | None = None

    def raise_if_violated(self) -> None:
        """Raise ValueError naming the parameters when some key is unreachable."""
        if not self.ok:
            raise ValueError(
                f"params {self.params} break random context access up to {self.length} keys: "
                f"{self.failing_queries} query positions miss keys; e.g. key {self.first_key} is in no "
                f"candidate span of the query at {self.first_query}"
            )


def check_coverage(params: SuperlinearParams, length: int) -> CoverageReport:
    """Check that for every query among ``length`` keys, every key in ``[start, ws)`` is reachable."""
    params.validate()
    offsets = stripe_offsets(params.stripe_exponent, params.sw_index + 1, length)  # P(j), j > sw_index
    t = torch.arange(1, length + 1, dtype=torch.int64)
    back = ceil_scaled_power(t, params.backward, params.span_exponent)
    fwd = ceil_scaled_power(t, params.forward, params.span_exponent)
    # Number of anchors at t; t > W (something before the window) implies at least one.
    count = torch.searchsorted(offsets, t, right=True)
    has_prefix = count > 0
    farthest = offsets[(count - 1).clamp_min(0)] if offsets.numel() else torch.zeros_like(t)
    reaches_start = t - farthest <= back
    # widest[i]: the largest gap among the first i + 2 anchors.
    gaps = offsets[1:] - offsets[:-1]
    widest = torch.cummax(gaps, 0).values if gaps.numel() else torch.zeros(1, dtype=torch.int64)
    no_gap = (count < 2) | (widest[(count - 2).clamp_min(0)] <= back + fwd + 1)
    failing = has_prefix & ~(reaches_start & no_gap)
    n_failing = int(failing.sum())
    if n_failing == 0:
        return CoverageReport(params, length, True, 0)
    first_t = int(failing.nonzero()[0, 0]) + 1
    key = _uncovered_key(offsets, first_t, int(back[first_t - 1]), int(fwd[first_t - 1]))
    return CoverageReport(params, length, False, n_failing, first_t - 1, key)


def _uncovered_key(offsets: torch.Tensor, t: int, back: int, fwd: int) -> int:
    """Return a key in ``[0, ws)`` that no candidate span of the query with ``t`` tokens contains."""
    anchors = [t - p for p in offsets.tolist() if p <= t]  # nearest first, descending positions
    for nearer, farther in zip(anchors, anchors[1:], strict=False):
        if farther + fwd + 1 < nearer - back:
            return farther + fwd + 1
    return anchors[-1] - back - 1
