"""The stripe-power helpers of the published ``superlinear`` 0.1.0 (``superlinear.common``), exact.

Same names, signatures and rules as the published ``kernels.common.power`` module (exactly one of
``search_power`` / ``inv_search_power_int``), computed with the integer-exact powers of ``powers``.
"""

from dataclasses import dataclass
from fractions import Fraction

from .powers import stripe_count, stripe_exponent, window_size

__all__ = [
    "StripePowerParams",
    "derive_stripe_power_params",
    "floor_nth_root",
    "max_stripe_index_for_token_pos",
    "window_len_from_sw_index",
]

SUPPORTED_INV_SEARCH_POWER_INTS = (2, 3, 4, 5, 6)


@dataclass(frozen=True)
class StripePowerParams:
    """``inv_p = 1/p`` (P(j) = floor(j ** inv_p)), ``p``, and ``triton_inv_n``: the integer ``inv_p``
    in 2..6 when there is one (exact integer powers), else 0."""

    inv_p: float
    p: float
    triton_inv_n: int


def derive_stripe_power_params(
    *, search_power: float | None, inv_search_power_int: int | None
) -> StripePowerParams:
    """Check that exactly one of the two powers is given and return the derived ``StripePowerParams``.

    ``search_power`` must be in (0, 1) and a fraction with denominator <= 1000 (ValueError otherwise).
    """
    if (search_power is None) == (inv_search_power_int is None):
        raise ValueError("Provide exactly one of inv_search_power_int or search_power")
    if inv_search_power_int is not None and int(inv_search_power_int) not in SUPPORTED_INV_SEARCH_POWER_INTS:
        raise ValueError(
            f"inv_search_power_int must be one of {SUPPORTED_INV_SEARCH_POWER_INTS} (got {inv_search_power_int})"
        )
    if search_power is not None and not 0.0 < float(search_power) < 1.0:
        raise ValueError(f"search_power must be finite and in (0, 1) (got {search_power})")
    exponent = _exponent(search_power, inv_search_power_int)
    integer = (
        int(exponent) if exponent.denominator == 1 and exponent in SUPPORTED_INV_SEARCH_POWER_INTS else 0
    )
    return StripePowerParams(inv_p=float(exponent), p=float(1 / exponent), triton_inv_n=integer)


def floor_nth_root(value: int, n: int) -> int:
    """Return ``floor(value ** (1/n))`` exactly, for ``value >= 0`` and ``n >= 1``."""
    if n <= 0:
        raise ValueError(f"n must be > 0 (got {n})")
    if value < 0:
        raise ValueError(f"value must be >= 0 (got {value})")
    root = int(round(value ** (1.0 / n)))
    while root**n > value:
        root -= 1
    while (root + 1) ** n <= value:
        root += 1
    return root


def window_len_from_sw_index(
    sw_index: int, *, search_power: float | None, inv_search_power_int: int | None
) -> int:
    """Return the sliding window ``W = P(sw_index + 1) - 1``."""
    exponent = _checked_exponent("sw_index", sw_index, search_power, inv_search_power_int)
    return window_size(int(sw_index), exponent)


def max_stripe_index_for_token_pos(
    token_pos: int, *, search_power: float | None, inv_search_power_int: int | None
) -> int:
    """Return the largest stripe index ``i`` with ``P(i) <= token_pos`` (0 when there is none)."""
    exponent = _checked_exponent("token_pos", token_pos, search_power, inv_search_power_int)
    return stripe_count(exponent, int(token_pos))


def _checked_exponent(name: str, value: int, search_power, inv_search_power_int) -> Fraction:
    """Require ``value >= 0`` and exactly one valid power (ValueError), then return the exponent ``1/p``."""
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (got {value})")
    derive_stripe_power_params(search_power=search_power, inv_search_power_int=inv_search_power_int)
    return _exponent(search_power, inv_search_power_int)


def _exponent(search_power, inv_search_power_int) -> Fraction:
    return stripe_exponent(search_power, None if search_power is not None else int(inv_search_power_int))
