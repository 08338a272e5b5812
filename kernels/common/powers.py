"""Integer-exact powers behind the stripe offsets P(j), the window W and the span lengths.

Prefill and decode, host and device must round these identically, or anchors near a rounding boundary
differ between paths. So every value is defined exactly over the rationals and computed from a float64
estimate that is corrected with exact integer comparisons wherever the estimate lies too close to an
integer to be trusted.

Exact definitions (all real parameters are read as rationals by ``exact_fraction``):

- stripe exponent ``r = 1/p``: ``p = Fraction(search_power).limit_denominator(1000)``, or ``r = n`` when
  ``inv_search_power_int = n`` governs (then ``P(j) = j ** n``);
- ``P(j) = floor(j ** r)``, the largest integer ``m`` with ``m ** p <= j`` (``m ** a <= j ** b`` for
  ``p = a/b``);
- ``W = P(sw_index + 1) - 1``;
- ``b(t) = ceil(backward * t ** s)``, ``f(t) = ceil(forward * t ** s)``, with the factors and ``s`` read as
  rationals the same way.

Values at or above ``2 ** 62`` (absurd parameters only) saturate to ``2 ** 62``, longer than any sequence.
"""

from fractions import Fraction

import torch

MAX_DENOMINATOR = 1000
SATURATED = 2**62
# float64 pow and the float conversion of the exponent stay within ~1e-14 relative error for the
# magnitudes used here; anything within this margin of an integer is settled exactly.
_RELATIVE_MARGIN = 1e-12


def exact_fraction(value: float | int | Fraction) -> Fraction:
    """Return the rational ``a/b`` (``b <= 1000``) a real parameter stands for exactly.

    A float stands for ``a/b`` when it is the float nearest to ``a/b`` (``0.55`` is ``11/20``). Anything
    else (``0.5501``, ``1/1024``) would be computed as a different number, so it raises ValueError naming
    what is supported instead of being rounded silently.
    """
    rational = Fraction(value).limit_denominator(MAX_DENOMINATOR)
    exact = rational == value if isinstance(value, (int, Fraction)) else float(rational) == float(value)
    if not exact:
        raise ValueError(
            f"{value!r} is not a fraction with denominator <= {MAX_DENOMINATOR}: the kernels compute with "
            f"exact rationals a/b, b <= {MAX_DENOMINATOR} (e.g. 0.55 = 11/20); the nearest supported value "
            f"is {float(rational)!r} = {rational}"
        )
    return rational


def stripe_exponent(search_power: float | None, inv_search_power_int: int | None) -> Fraction:
    """Return ``r = 1/p`` exactly; ``search_power`` governs when given, else ``inv_search_power_int``."""
    if search_power is not None:
        return 1 / exact_fraction(search_power)
    return Fraction(inv_search_power_int)


def floor_scaled_power(x: torch.Tensor, scale: Fraction, exponent: Fraction) -> torch.Tensor:
    """Return ``floor(scale * x ** exponent)`` exactly for non-negative integers ``x`` (int64, any shape)."""
    return _round_scaled_power(x, Fraction(scale), Fraction(exponent), ceil=False)


def ceil_scaled_power(x: torch.Tensor, scale: Fraction, exponent: Fraction) -> torch.Tensor:
    """Return ``ceil(scale * x ** exponent)`` exactly for non-negative integers ``x`` (int64, any shape)."""
    return _round_scaled_power(x, Fraction(scale), Fraction(exponent), ceil=True)


def stripe_offset(j: int, exponent: Fraction) -> int:
    """Return ``P(j)`` for one ``j``, through the same code path as the tables."""
    return int(floor_scaled_power(torch.tensor([j]), Fraction(1), exponent)[0])


def stripe_offsets(exponent: Fraction, first: int, limit: int) -> torch.Tensor:
    """Return ``P(j)`` for ``j = first, first + 1, ...`` while ``P(j) <= limit`` (int64, ascending)."""
    # P(j) <= limit  <=>  j ** r < limit + 1  <=>  j < (limit + 1) ** p; two extra for float slack.
    last = int(float(limit + 1) ** (1 / float(exponent))) + 2
    j = torch.arange(first, max(first, last + 1), dtype=torch.int64)
    offsets = floor_scaled_power(j, Fraction(1), exponent)
    # P is strictly increasing for r >= 1, so this keeps a prefix.
    return offsets[offsets <= limit]


def stripe_count(exponent: Fraction, limit: int) -> int:
    """Return the largest ``j`` with ``P(j) <= limit`` (the inverse of P, rounded down)."""
    return stripe_offsets(exponent, 1, limit).numel()


def window_size(sw_index: int, exponent: Fraction) -> int:
    """Return the sliding window ``W = P(sw_index + 1) - 1`` (0 when ``sw_index = 0``)."""
    return stripe_offset(sw_index + 1, exponent) - 1


def _round_scaled_power(x: torch.Tensor, scale: Fraction, exponent: Fraction, ceil: bool) -> torch.Tensor:
    host = x.to(torch.int64).cpu()
    estimate = float(scale) * host.double() ** float(exponent)
    saturated = estimate >= SATURATED
    if exponent.denominator == 1 and scale.denominator == 1:
        exact = host**exponent.numerator * scale.numerator
        return torch.where(saturated, SATURATED, exact).to(x.device)
    rounding = torch.ceil if ceil else torch.floor
    margin = _RELATIVE_MARGIN * (estimate + 1.0)
    low, high = rounding(estimate - margin).reshape(-1), rounding(estimate + margin).reshape(-1)
    result = rounding(estimate).clamp_max(SATURATED).to(torch.int64).reshape(-1)
    unsure = (low != high) & ~saturated.reshape(-1)
    if scale == 0:
        unsure.zero_()
    flat_x = host.reshape(-1)
    for i in unsure.nonzero().flatten().tolist():
        bracket = (int(low[i]) - 1, int(high[i]) + 1)
        result[i] = _exact_round(int(flat_x[i]), scale, exponent, ceil, bracket)
    return result.reshape(x.shape).to(x.device)


def _exact_round(x: int, scale: Fraction, exponent: Fraction, ceil: bool, bracket: tuple[int, int]) -> int:
    """Round ``scale * x ** exponent`` with integer arithmetic only, bisecting from a float ``bracket``."""
    c, d = scale.numerator, scale.denominator
    u, v = exponent.numerator, exponent.denominator
    # For m >= 0: m < y  <=>  (m * d) ** v < c ** v * x ** u, where y = c/d * x ** (u/v).
    target = c**v * x**u

    def below(m: int) -> bool:
        # True while m is under the result: m < y for the ceiling, m <= y for the floor.
        power = (m * d) ** v
        return power < target if ceil else power <= target

    low, high = max(bracket[0], 0), max(bracket[1], 1)
    if not below(low):
        low = -1  # the float bracket missed; -1 stands for "below" and the bisection still converges
    while below(high):
        high = 2 * high + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if below(middle) else (low, middle)
    # high is now the first m that is not below the result.
    return high if ceil else high - 1
