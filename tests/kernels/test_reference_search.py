"""The span search picks the same anchors on every path, breaks ties toward the past, and bounds spans."""

from fractions import Fraction

import pytest
import torch

from superlinear.kernels import SuperlinearParams
from superlinear.kernels.superlinear.search.reference import (
    all_stripe_offsets,
    candidate_anchors,
    route,
    sequence_starts,
)


def params_with_power(p: float, num_spans: int = 3) -> SuperlinearParams:
    return SuperlinearParams(
        sw_index=1,
        num_spans=num_spans,
        backward_factor=2.0,
        forward_factor=1.0,
        search_power=p,
        span_power=p,
        inv_search_power_int=None,
    )


def exact_offsets(p: float, first: int, limit: int) -> list[int]:
    """P(j) for j >= first while P(j) <= limit, by exact integer search (independent of the kernels)."""
    rational = Fraction(p).limit_denominator(1000)
    a, b = rational.numerator, rational.denominator
    offsets, j, m = [], first, 0
    while True:
        while (m + 1) ** a <= j**b:
            m += 1
        if m > limit:
            return offsets
        offsets.append(m)
        j += 1


def boundary_positions(offsets: list[int], length: int) -> set[int]:
    # Queries whose q + 1 sits on, just before or just after a stripe offset.
    return {q for p in offsets for q in (p - 2, p - 1, p) if 0 <= q < length}


@pytest.mark.parametrize("p", [0.45, 0.55, 0.6])
def test_candidate_anchors_follow_the_exact_stripe_offsets(p):
    params = params_with_power(p)
    length = 5000
    offsets = all_stripe_offsets(params, length - 1)
    assert offsets.tolist() == exact_offsets(p, params.sw_index + 1, length)
    positions = torch.arange(length)
    anchors, valid = candidate_anchors(positions, torch.zeros(1, dtype=torch.int64), None, offsets, 1)
    for q in (0, 17, 1000, length - 1):
        expected = sorted(q + 1 - x for x in exact_offsets(p, params.sw_index + 1, q + 1))
        assert anchors[q][valid[0, q]].tolist() == expected


@pytest.mark.parametrize("p", [0.45, 0.55, 0.6])
def test_prefill_and_decode_select_identical_anchors(p, rng, make_inputs):
    params = params_with_power(p)
    length = 3000
    Q1, _, K, _ = make_inputs(1, 2, 1, length, 4)
    starts = sequence_starts(None, 1, length, "cpu")
    prefill = route(Q1, K, torch.arange(length), starts, None, params, all_stripe_offsets(params, length - 1))
    offsets = exact_offsets(p, params.sw_index + 1, length)
    positions = sorted(boundary_positions(offsets, length) | set(rng.sample(range(length), 60)))
    for q in positions:
        # Decode sees only the keys up to q and builds its own, shorter offset table.
        one = route(
            Q1[:, :, q : q + 1],
            K[:, :, : q + 1],
            torch.tensor([q]),
            starts,
            None,
            params,
            all_stripe_offsets(params, q),
        )
        assert torch.equal(one.anchors[:, :, 0], prefill.anchors[:, :, q]), q
        assert torch.equal(one.valid[:, :, 0], prefill.valid[:, :, q]), q
        assert torch.equal(one.span_lo[:, :, 0], prefill.span_lo[:, :, q]), q
        assert torch.equal(one.span_hi[:, :, 0], prefill.span_hi[:, :, q]), q


def test_ties_go_to_the_farther_anchor_on_every_path(make_inputs):
    params = SuperlinearParams(sw_index=1, num_spans=2, backward_factor=1.0, forward_factor=1.0)
    length = 200
    Q1, _, K, _ = make_inputs(1, 2, 1, length, 8)
    # Identical keys make every anchor score equal: the two farthest anchors must win.
    K = K[:, :, :1].expand(1, 1, length, 8).contiguous()
    starts = torch.zeros(1, dtype=torch.int64)
    prefill = route(Q1, K, torch.arange(length), starts, None, params, all_stripe_offsets(params, length - 1))
    for q in (8, 50, 199):
        decode = route(
            Q1[:, :, q : q + 1], K, torch.tensor([q]), starts, None, params, all_stripe_offsets(params, q)
        )
        farthest = sorted(q + 1 - j * j for j in range(2, 16) if j * j <= q + 1)[:2]
        for routing, column in ((prefill, q), (decode, 0)):
            assert routing.anchors[0, :, column].tolist() == [farthest, farthest]


def test_spans_contain_their_anchor_and_stay_between_start_and_the_window(make_inputs):
    params = params_with_power(0.55, num_spans=4)
    length = 900
    Q1, _, K, _ = make_inputs(2, 2, 2, length, 8)
    mask = torch.ones(2, length, dtype=torch.int64)
    mask[1, :123] = 0
    starts = sequence_starts(mask, 2, length, "cpu")
    positions = torch.arange(length)
    routing = route(Q1, K, positions, starts, mask, params, all_stripe_offsets(params, length - 1))
    valid = routing.valid
    lo, hi, a = routing.span_lo[valid], routing.span_hi[valid], routing.anchors[valid]
    start = starts[:, None, None, None].expand_as(valid)[valid]
    ws = routing.window_start[:, None, :, None].expand_as(valid)[valid]
    assert valid.any()
    assert bool(((start <= lo) & (lo <= a) & (a <= hi) & (hi < ws)).all())
    # Padded queries have no valid slot at all.
    assert not routing.valid[1, :, :123].any()


def test_fewer_valid_anchors_than_spans_leave_invalid_slots(make_inputs):
    params = SuperlinearParams(sw_index=1, num_spans=4, backward_factor=1.0, forward_factor=1.0)
    Q1, _, K, _ = make_inputs(1, 1, 1, 20, 8)
    starts = torch.zeros(1, dtype=torch.int64)
    routing = route(Q1, K, torch.arange(20), starts, None, params, all_stripe_offsets(params, 19))
    # Anchors at q + 1 - j ** 2 for j >= 2: q = 19 has j = 2, 3, 4 (three anchors), q = 2 has none.
    assert routing.valid[0, 0, 19].tolist() == [True, True, True, False]
    assert not routing.valid[0, 0, 2].any()
    assert routing.span_lo[0, 0, 19, 3] > routing.span_hi[0, 0, 19, 3]
