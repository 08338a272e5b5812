"""P(j), the window and the span lengths are integer-exact, so no two paths can round differently."""

import math
from fractions import Fraction

import pytest
import torch

from superlinear.kernels import SuperlinearParams
from superlinear.kernels.common.powers import (
    SATURATED,
    ceil_scaled_power,
    floor_scaled_power,
    stripe_count,
    stripe_exponent,
    stripe_offset,
    stripe_offsets,
    window_size,
)

POWERS = [0.45, 0.5, 0.55, 0.6, 0.7, 1 / 3, 0.123]


def is_largest_root(m: int, j: int, p: Fraction) -> bool:
    """m is the largest integer with m ** p <= j: m ** a <= j ** b < (m + 1) ** a for p = a / b."""
    a, b = p.numerator, p.denominator
    return m**a <= j**b < (m + 1) ** a


def sample_j(rng, p: float, count: int) -> list[int]:
    # Keep P(j) below the saturation bound, and include the j whose root is an exact integer.
    top = min(10**6, int(2 ** (62 * p)) - 1)
    exact_roots = [k ** Fraction(p).limit_denominator(1000).numerator for k in range(1, 40)]
    sample = rng.sample(range(1, top + 1), min(count, top))
    return sorted({1, 2, 3, top, *sample, *[j for j in exact_roots if j <= top]})


@pytest.mark.parametrize("p", POWERS)
def test_the_stripe_offset_is_the_largest_integer_whose_pth_power_fits(p, rng):
    exponent = stripe_exponent(p, None)
    rational = Fraction(p).limit_denominator(1000)
    j = sample_j(rng, p, 3000)
    offsets = floor_scaled_power(torch.tensor(j), Fraction(1), exponent).tolist()
    bad = [(x, m) for x, m in zip(j, offsets, strict=True) if not is_largest_root(m, x, rational)]
    assert not bad, bad[:5]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_an_integer_inverse_power_gives_exact_integer_powers(n, rng):
    j = sorted(rng.sample(range(1, int(2 ** (62 / n))), 500))
    assert floor_scaled_power(torch.tensor(j), Fraction(1), Fraction(n)).tolist() == [x**n for x in j]
    # A search_power of 1/n means the same stripes.
    assert stripe_exponent(1 / n, None) == stripe_exponent(None, n) == n
    given_as_power = SuperlinearParams(3, 3, 3.0, 1.0, search_power=1 / n, inv_search_power_int=None)
    assert (
        given_as_power.integer_stripe_power
        == SuperlinearParams(3, 3, 3.0, 1.0, inv_search_power_int=n).integer_stripe_power
        == n
    )


def test_a_fractional_power_has_no_integer_stripe_power():
    assert SuperlinearParams(3, 3, 3.0, 1.0, search_power=0.55).integer_stripe_power is None


def test_rounding_boundaries_that_floats_get_wrong_are_exact():
    # 2048 ** (20 / 11) is exactly 2 ** 20, while floor(2048 ** (1 / 0.55)) in float64 is 2 ** 20 - 1.
    assert math.floor(2048 ** (1 / 0.55)) == 2**20 - 1
    assert stripe_offset(2048, stripe_exponent(0.55, None)) == 2**20
    assert stripe_offset(177147, stripe_exponent(0.55, None)) == 3**20
    assert stripe_offset(8, stripe_exponent(0.6, None)) == 32
    assert stripe_offset(27, stripe_exponent(0.6, None)) == 243


def test_tables_and_single_values_agree_and_shorter_tables_are_prefixes(rng):
    exponent = stripe_exponent(0.55, None)
    table = stripe_offsets(exponent, 1, 2**21).tolist()
    assert table == [stripe_offset(j, exponent) for j in range(1, len(table) + 1)]
    assert table[-1] <= 2**21 < stripe_offset(len(table) + 1, exponent)
    for limit in rng.sample(range(1, 2**21), 50) + [2**20 - 1, 2**20, 2**20 + 1]:
        shorter = stripe_offsets(exponent, 1, limit).tolist()
        assert shorter == [x for x in table if x <= limit]
        assert stripe_count(exponent, limit) == len(shorter)


def test_span_lengths_are_exact_ceilings(rng):
    factor, s = Fraction(3), Fraction(11, 20)
    t = sorted({1, 2, 2**20, 3**20, *rng.sample(range(1, 4 * 10**6), 3000)})
    got = ceil_scaled_power(torch.tensor(t), factor, s).tolist()
    for x, b in zip(t, got, strict=True):
        # b is the smallest integer >= 3 * x ** (11 / 20): b ** 20 >= 3 ** 20 * x ** 11 > (b - 1) ** 20.
        assert b**20 >= 3**20 * x**11 > (b - 1) ** 20, (x, b)
    assert got[t.index(2**20)] == 3 * 2**11


def test_a_zero_factor_gives_empty_extensions():
    assert ceil_scaled_power(torch.arange(1, 100), Fraction(0), Fraction(1, 2)).tolist() == [0] * 99


def test_the_window_sizes_of_the_known_configs():
    assert SuperlinearParams(65, 3, 3.0, 1.0, search_power=0.55, span_power=0.55).window == 2032
    small = SuperlinearParams(3, 3, 3.0, 1.0, search_power=0.55, span_power=0.55, inv_search_power_int=None)
    assert small.window == stripe_offset(4, Fraction(20, 11)) - 1 == 11
    assert SuperlinearParams(3, 3, 3.0, 1.0).window == 15
    for sw_index in range(0, 10):
        assert window_size(sw_index, Fraction(2)) == (sw_index + 1) ** 2 - 1
    assert window_size(0, stripe_exponent(0.55, None)) == 0


def test_absurdly_large_powers_saturate_instead_of_overflowing():
    assert stripe_offset(66, Fraction(100)) == SATURATED
    assert window_size(65, stripe_exponent(0.05, None)) == SATURATED - 1
