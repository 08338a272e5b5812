"""logit_bias and log-probabilities on torch logits, checked against the core's reference log-softmax."""

from __future__ import annotations

import math
import random

import pytest
import torch

from superlinear.adapters.logits import biased_logits, token_logprobs
from superlinear.adapters.torch_model import sample_token
from superlinear.core.logprobs import logprobs_of
from superlinear.core.values import SamplingParams


@pytest.mark.parametrize("seed", range(5))
def test_token_logprobs_match_the_reference_log_softmax_with_the_bias(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(300, generator=gen, dtype=torch.float64) * 4
    bias = tuple(sorted({(int(i), float(b)) for i, b in zip(torch.randint(0, 300, (7,), generator=gen),
                                                              torch.empty(7).uniform_(-100, 100, generator=gen), strict=True)}))
    bias = tuple({i: b for i, b in bias}.items())
    params = SamplingParams(logit_bias=bias)
    table = {i: float(v) for i, v in enumerate(logits)}
    for i, b in bias:
        table[i] += b
    chosen = random.Random(seed).randrange(300)
    got = token_logprobs(logits, params, chosen, 20)
    want = logprobs_of(table, chosen, 20)
    assert got.token_id == chosen
    assert math.isclose(got.logprob, want.logprob, abs_tol=1e-4)
    assert [i for i, _ in got.top] == [i for i, _ in want.top]
    assert all(math.isclose(a, b, abs_tol=1e-4) for (_, a), (_, b) in zip(got.top, want.top, strict=True))


def test_biased_logits_leave_the_state_logits_alone():
    logits = torch.zeros(10)
    out = biased_logits(logits, SamplingParams(logit_bias=((3, 5.0),)))
    assert out[3] == 5.0 and logits[3] == 0.0


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_bias_of_100_forces_a_token_and_minus_100_bans_one(temperature):
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    top = int(torch.argmax(logits))
    rng = random.Random(3)
    forced = SamplingParams(temperature=temperature, logit_bias=((7, 100.0),))
    assert {sample_token(logits, forced, rng) for _ in range(30)} == {7}
    banned = SamplingParams(temperature=0.0, logit_bias=((top, -100.0),))
    assert sample_token(logits, banned, rng) != top


@pytest.mark.parametrize("seed", range(3))
def test_the_allowed_bitmask_keeps_exactly_its_ids(seed):
    from superlinear.adapters.logits import mask_disallowed

    rng = random.Random(seed)
    vocab = rng.randrange(1, 300)
    keep = {i for i in range(vocab) if rng.random() < 0.3}
    mask = bytearray((vocab + 31) // 32 * 4)
    for i in keep:
        mask[i // 8] |= 1 << (i % 8)
    out = mask_disallowed(torch.randn(vocab), bytes(mask))
    assert {i for i in range(vocab) if out[i] > -math.inf} == keep
    if keep:
        params = SamplingParams(temperature=1.0)
        assert {sample_token(torch.randn(vocab), params, rng, bytes(mask)) for _ in range(20)} <= keep
