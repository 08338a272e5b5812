"""Random context access: every key before the window is inside some anchor's candidate span."""

import time
from fractions import Fraction

import pytest

from superlinear.kernels import SuperlinearParams, check_coverage

TINY = SuperlinearParams(sw_index=1, num_spans=2, backward_factor=3.0, forward_factor=1.0)


def exact_root(j: int, p: Fraction) -> int:
    m = 0
    while (m + 1) ** p.numerator <= j**p.denominator:
        m += 1
    return m


def exact_ceiling(factor: Fraction, t: int, s: Fraction) -> int:
    m = 0
    while (m * factor.denominator) ** s.denominator < factor.numerator**s.denominator * t**s.numerator:
        m += 1
    return m


def uncovered_keys(params: SuperlinearParams, q: int) -> set[int]:
    """Keys in [0, ws) outside every candidate span of the query at q (start = 0), by enumeration."""
    p = (
        Fraction(params.search_power).limit_denominator(1000)
        if params.search_power
        else Fraction(1, params.inv_search_power_int)
    )
    s = Fraction(params.span_power).limit_denominator(1000)
    back = exact_ceiling(Fraction(params.backward_factor).limit_denominator(1000), q + 1, s)
    fwd = exact_ceiling(Fraction(params.forward_factor).limit_denominator(1000), q + 1, s)
    ws = max(q - (exact_root(params.sw_index + 1, p) - 1) + 1, 0)
    covered, j = set(), params.sw_index + 1
    while (offset := exact_root(j, p)) <= q + 1:
        a = q + 1 - offset
        covered |= set(range(max(a - back, 0), min(a + fwd, q, ws - 1) + 1))
        j += 1
    return set(range(ws)) - covered


def test_the_released_config_covers_a_million_keys_in_seconds(released):
    began = time.perf_counter()
    report = check_coverage(released, 1_000_000)
    assert report.ok and report.failing_queries == 0 and report.first_key is None
    assert time.perf_counter() - began < 20


@pytest.mark.parametrize("params", ["seed_example", TINY])
def test_the_seed_and_tiny_configs_cover_a_million_keys(params, request):
    params = request.getfixturevalue(params) if isinstance(params, str) else params
    assert check_coverage(params, 1_000_000).ok


def test_spans_of_one_key_break_coverage_and_the_report_says_where():
    broken = SuperlinearParams(sw_index=1, num_spans=1, backward_factor=0.0, forward_factor=0.0)
    report = check_coverage(broken, 500)
    assert not report.ok and report.failing_queries > 0
    assert report.first_key in uncovered_keys(broken, report.first_query)
    # Every earlier query really is covered.
    assert all(not uncovered_keys(broken, q) for q in range(report.first_query))
    with pytest.raises(ValueError, match="break random context access"):
        report.raise_if_violated()


@pytest.mark.parametrize("draw", range(6))
def test_the_checker_agrees_with_enumerating_every_query(draw, rng):
    params = SuperlinearParams(
        sw_index=rng.randrange(0, 4),
        num_spans=1,
        backward_factor=rng.choice([0.0, 0.2, 0.5, 1.0]),
        forward_factor=rng.choice([0.0, 0.3, 1.0]),
        search_power=rng.choice([0.45, 0.5, 0.55, 0.6]),
        span_power=rng.choice([0.3, 0.45, 0.55]),
    )
    length = 400
    failing = [q for q in range(length) if uncovered_keys(params, q)]
    report = check_coverage(params, length)
    assert report.failing_queries == len(failing)
    assert report.ok == (not failing)
    if failing:
        assert report.first_query == failing[0]
        assert report.first_key in uncovered_keys(params, failing[0])
