"""The reference equals an independent brute force built from docs/attention.md with Python integers."""

import math
from fractions import Fraction

import pytest
import torch

from superlinear.kernels import SuperlinearParams, superlinear_attention


def largest_root(j: int, p: Fraction) -> int:
    """Return the largest m with m ** p <= j, i.e. m ** a <= j ** b for p = a / b, by bisection."""
    target = j**p.denominator
    low, high = 0, 1
    while high**p.numerator <= target:
        high *= 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if middle**p.numerator <= target else (low, middle)
    return low


def smallest_ceiling(factor: Fraction, t: int, s: Fraction) -> int:
    """Return the smallest integer m >= factor * t ** s, by bisection on (m d) ** v >= c ** v t ** u."""
    target = factor.numerator**s.denominator * t**s.numerator

    def enough(m: int) -> bool:
        return (m * factor.denominator) ** s.denominator >= target

    low, high = -1, 1
    while not enough(high):
        high *= 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def rational(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1000)


def search_power(params: SuperlinearParams) -> Fraction:
    if params.search_power is not None:
        return rational(params.search_power)
    return Fraction(1, params.inv_search_power_int)


def fp32(x: float) -> float:
    return torch.tensor(x, dtype=torch.float32).item()


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    if keys.shape[0] == 0:
        return torch.zeros_like(q)
    weights = torch.softmax(keys @ q / math.sqrt(q.shape[0]), dim=0)
    return weights @ values


def brute_force_query(q1, q2, keys, values, mask, q: int, params: SuperlinearParams) -> torch.Tensor:
    """One query of one head, straight from the definition; tensors float64, keys/values [LKV, D]."""
    valid_keys = [i for i in range(len(mask)) if mask[i]]
    start = valid_keys[0] if valid_keys else len(mask)
    if q < start:
        return torch.zeros_like(q2)
    p, s = search_power(params), rational(params.span_power)
    window = largest_root(params.sw_index + 1, p) - 1
    ws = max(q - window + 1, start)
    anchors, j = [], params.sw_index + 1
    while largest_root(j, p) <= q + 1:
        a = q + 1 - largest_root(j, p)
        if a >= start and mask[a]:
            anchors.append((fp32(float(q1 @ keys[a])), a))
        j += 1
    chosen = sorted(anchors, key=lambda pair: (-pair[0], pair[1]))[: params.num_spans]
    t = q + 1 - start
    back = smallest_ceiling(rational(params.backward_factor), t, s)
    fwd = smallest_ceiling(rational(params.forward_factor), t, s)
    window_keys = set(range(ws, q + 1))
    outputs, logits = [], []
    for score, a in chosen:
        span = set(range(max(a - back, start), min(a + fwd, q, ws - 1) + 1))
        index = torch.tensor(sorted(span | window_keys), dtype=torch.int64)
        outputs.append(attend(q2, keys[index], values[index]))
        logits.append(score)
    window_index = torch.tensor(sorted(window_keys), dtype=torch.int64)
    while len(outputs) < params.num_spans:
        outputs.append(attend(q2, keys[window_index], values[window_index]))
        logits.append(-math.inf)
    if not chosen:
        logits = [0.0] * params.num_spans
    gate = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=0)
    return sum(g * o for g, o in zip(gate, outputs, strict=True))


def brute_force(Q1, Q2, K, V, positions, attention_mask, params) -> torch.Tensor:
    """Loop over batch rows, query heads and queries; returns [B, HQ, LQ, D] float64."""
    batch, q_heads, q_len, dim = Q2.shape
    group = q_heads // K.shape[1]
    out = torch.empty(batch, q_heads, q_len, dim, dtype=torch.float64)
    for b in range(batch):
        mask = [1] * K.shape[2] if attention_mask is None else attention_mask[b].tolist()
        for h in range(q_heads):
            keys, values = K[b, h // group].double(), V[b, h // group].double()
            for i, q in enumerate(positions.tolist()):
                q1, q2 = Q1[b, h, i].double(), Q2[b, h, i].double()
                out[b, h, i] = brute_force_query(q1, q2, keys, values, mask, q, params)
    return out


def left_padding_mask(batch: int, length: int, paddings: list[int]) -> torch.Tensor:
    mask = torch.ones(batch, length, dtype=torch.int64)
    for b, pad in enumerate(paddings):
        mask[b, :pad] = 0
    return mask


def test_the_seed_example_matches_the_brute_force_with_left_padding(seed_example, make_inputs, assert_close):
    Q1, Q2, K, V = make_inputs(2, 4, 2, 157, 16)
    mask = left_padding_mask(2, 157, [0, 13])
    positions = torch.arange(157)
    out = superlinear_attention(Q1, Q2, K, V, positions, mask, params=seed_example)
    assert_close(out, brute_force(Q1, Q2, K, V, positions, mask, seed_example))


def test_the_released_config_matches_the_brute_force_where_anchors_exist(released, make_inputs, assert_close):
    length = 2301
    Q1, Q2, K, V = make_inputs(2, 4, 1, length, 8)
    mask = left_padding_mask(2, length, [0, 37])
    rows = torch.tensor([5, 2031, 2032, 2033, 2100, 2207, 2270, 2300])
    out = superlinear_attention(Q1[:, :, rows], Q2[:, :, rows], K, V, rows, mask, params=released)
    expected = brute_force(Q1[:, :, rows], Q2[:, :, rows], K, V, rows, mask, released)
    assert_close(out, expected)


def test_bf16_inputs_match_the_brute_force_within_bf16_rounding(seed_example, make_inputs, assert_close):
    Q1, Q2, K, V = make_inputs(1, 4, 2, 111, 32, dtype=torch.bfloat16)
    positions = torch.arange(111)
    out = superlinear_attention(Q1, Q2, K, V, positions, params=seed_example)
    assert out.dtype == torch.bfloat16
    assert_close(out, brute_force(Q1, Q2, K, V, positions, None, seed_example), max_abs=2e-2, rel_rms=1e-2)


@pytest.mark.parametrize("draw", range(8))
def test_random_parameter_draws_match_the_brute_force(draw, rng, make_inputs, assert_close):
    power = rng.choice([0.45, 0.55, 0.6, None, None])
    params = SuperlinearParams(
        sw_index=rng.randrange(0, 5),
        num_spans=rng.randrange(1, 5),
        backward_factor=rng.choice([0.0, 0.5, 1.0, 1.7, 3.0]),
        forward_factor=rng.choice([0.0, 0.5, 1.0, 2.0]),
        search_power=power,
        span_power=rng.choice([0.45, 0.5, 0.55, 0.6]),
        inv_search_power_int=rng.choice([2, 3]) if power is None else None,
    )
    length, kv_heads = rng.randrange(40, 180), rng.choice([1, 2, 4])
    Q1, Q2, K, V = make_inputs(2, 4, kv_heads, length, rng.choice([4, 8, 16]))
    mask = left_padding_mask(2, length, [0, rng.randrange(0, 30)])
    positions = torch.arange(length)
    out = superlinear_attention(Q1, Q2, K, V, positions, mask, params=params)
    assert_close(out, brute_force(Q1, Q2, K, V, positions, mask, params))


def test_the_brute_force_helpers_agree_with_known_values():
    assert largest_root(66, Fraction(11, 20)) == 2033
    assert largest_root(2048, Fraction(11, 20)) == 2**20
    assert largest_root(4, Fraction(1, 2)) == 16
    assert smallest_ceiling(Fraction(3), 2**20, Fraction(11, 20)) == 3 * 2**11
    assert smallest_ceiling(Fraction(3), 10, Fraction(1, 2)) == 10
    assert smallest_ceiling(Fraction(0), 10, Fraction(1, 2)) == 0
