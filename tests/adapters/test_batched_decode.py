"""Batched decode on the shipped default model equals one-at-a-time decode (CPU, fp32)."""

from __future__ import annotations

import random

import pytest
import torch

from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel
from superlinear.core.ports import RowRejected
from superlinear.core.scheduler import Feed, PendingFeed, run_decode
from superlinear.core.values import SamplingParams

GREEDY = SamplingParams(max_tokens=1, temperature=0.0)


@pytest.fixture(scope="module")
def model() -> TorchModel:
    return TorchModel.from_dir(DEFAULT_MODEL_DIR)


def prompts(seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(5, 1024) for _ in range(n)] for n in (3, 40, 170, 300)]


def greedy_alone(model, prompt, steps):
    state = model.new_state(1024)
    model.append(state, prompt)
    out = []
    for _ in range(steps):
        tid = model.sample(state, GREEDY, random.Random(0))
        out.append(tid)
        model.append(state, [tid])
    return out, state


def test_one_batched_step_matches_each_row_alone(model):
    """Logits of a batched step equal each state's own step to fp32 rounding, on fresh random prompts."""
    batch, alone = [], []
    for p in prompts(random.randrange(1 << 30)):
        a, b = model.new_state(1024), model.new_state(1024)
        model.append(a, p)
        model.append(b, p)
        batch.append(a)
        alone.append(b)
    tokens = [random.randrange(5, 1024) for _ in batch]
    model.decode_batch(batch, tokens)
    for a, b, t in zip(batch, alone, tokens, strict=True):
        model.append(b, [t])
        assert a.cursor == b.cursor
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)


def test_greedy_output_is_token_for_token_the_same_with_rows_joining_and_leaving(model):
    """Four sequences of different lengths; rows join at different steps and leave after different counts."""
    ps = prompts(7)
    plan = [(0, 30), (3, 12), (5, 25), (9, 8)]  # (step it joins, tokens it generates)
    expected = [greedy_alone(model, p, n)[0] for p, (_, n) in zip(ps, plan, strict=True)]
    states = [None] * len(ps)
    got: list[list[int]] = [[] for _ in ps]
    for step in range(40):
        for i, (join, _) in enumerate(plan):
            if step == join:
                states[i] = model.new_state(1024)
                model.append(states[i], ps[i])
        live = [i for i, (join, n) in enumerate(plan) if states[i] is not None and len(got[i]) < n]
        if not live:
            continue
        tokens = [model.sample(states[i], GREEDY, random.Random(0)) for i in live]
        for i, t in zip(live, tokens, strict=True):
            got[i].append(t)
        model.decode_batch([states[i] for i in live], tokens)
    assert got == expected


def test_a_row_past_its_maximum_fails_the_batch_before_any_state_changes(model):
    a, b = model.new_state(8), model.new_state(1024)
    model.append(a, list(range(5, 13)))
    model.append(b, [5, 6])
    before = b.checkpoint()
    with pytest.raises(RowRejected, match="exceed") as info:
        model.decode_batch([b, a], [7, 7])
    assert info.value.row == 1
    assert b.cursor == before.cursor and torch.equal(b.logits, before.logits)


def test_the_engine_fails_a_rejected_decode_row_alone_and_feeds_the_others(model):
    """run_decode drops a row the model rejects (here past its maximum) and runs the others as one batch."""
    full, states = model.new_state(8), [model.new_state(64) for _ in range(2)]
    model.append(full, list(range(5, 13)))
    for s in states:
        model.append(s, [5, 6, 7])
    feeds = [PendingFeed(Feed(model, s, [9])) for s in (states[0], full, states[1])]
    errors = run_decode(feeds)
    assert errors[0] is None and errors[2] is None and "exceed" in str(errors[1])
    assert [s.cursor for s in states] == [4, 4] and full.cursor == 8 and [f.done for f in feeds] == [1, 0, 1]
