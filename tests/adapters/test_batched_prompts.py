"""Batched prompt forwards on the shipped default model equal each row's own `append` (CPU, fp32)."""

from __future__ import annotations

import random

import pytest
import torch

from superlinear.adapters.hybrid.mamba import ssd_scan
from superlinear.adapters.hybrid.prompt_batch import ssd_scan_rows
from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel
from superlinear.core.ports import RowRejected
from superlinear.core.values import SamplingParams

GREEDY = SamplingParams(max_tokens=1, temperature=0.0)


@pytest.fixture(scope="module")
def model() -> TorchModel:
    return TorchModel.from_dir(DEFAULT_MODEL_DIR)


def twin_states(model, rng, held):
    """Two states holding the same random tokens, `held` of them."""
    ids = [rng.randrange(5, 500) for _ in range(held)]
    a, b = model.new_state(2048), model.new_state(2048)
    if ids:
        model.append(a, ids)
        model.append(b, ids)
    return a, b


def test_a_batch_of_runs_of_different_lengths_at_different_positions_matches_each_row_alone(model):
    """Rows hold 0..500 tokens and take runs of 1..130 tokens (across the SSD chunk); fresh random inputs."""
    rng = random.Random(random.randrange(1 << 30))
    held = [0, 3, 40, 170, 300, 500, 12, 90]
    widths = [19, 2, 130, 65, 1, 40, 1, 7]
    pairs = [twin_states(model, rng, n) for n in held]
    runs = [[rng.randrange(5, 1024) for _ in range(w)] for w in widths]
    model.append_batch([a for a, _ in pairs], runs)
    for (a, b), run in zip(pairs, runs, strict=True):
        model.append(b, run)
        assert a.cursor == b.cursor
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)
        for ca, cb in zip(a.layers, b.layers, strict=True):
            if hasattr(ca, "ssm"):
                torch.testing.assert_close(ca.ssm, cb.ssm, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(ca.conv, cb.conv, rtol=1e-4, atol=1e-5)
            elif hasattr(ca, "k"):
                torch.testing.assert_close(ca.k[:, :, : a.cursor], cb.k[:, :, : b.cursor], rtol=1e-4, atol=1e-5)


def test_greedy_continuations_after_a_batched_prompt_are_token_for_token_the_same(model):
    """Prompts of different lengths prefilled together, then decoded together, give each row's answer alone."""
    rng = random.Random(11)
    prompts = [[rng.randrange(5, 1024) for _ in range(n)] for n in (5, 19, 33, 64, 80)]
    expected = []
    for p in prompts:
        state = model.new_state(1024)
        model.append(state, p)
        out = []
        for _ in range(20):
            out.append(model.sample(state, GREEDY, random.Random(0)))
            model.append(state, [out[-1]])
        expected.append(out)
    states = [model.new_state(1024) for _ in prompts]
    model.append_batch(states, prompts)
    got: list[list[int]] = [[] for _ in prompts]
    for _ in range(20):
        tokens = [model.sample(s, GREEDY, random.Random(0)) for s in states]
        for out, t in zip(got, tokens, strict=True):
            out.append(t)
        model.decode_batch(states, tokens)
    assert got == expected


def test_the_batched_scan_equals_the_scan_of_each_row_with_inert_padding():
    """`ssd_scan_rows` with a row's tail padded (dt = 0, x = B = C = 0) equals `ssd_scan` of the row alone."""
    gen = torch.Generator().manual_seed(random.randrange(1 << 30))
    heads, dim, groups, n, lengths = 4, 8, 2, 16, [70, 5, 33]
    width = max(lengths)
    x, b, c = (torch.randn(3, width, *shape, generator=gen) for shape in ((heads, dim), (groups, n), (groups, n)))
    dt = torch.rand(3, width, heads, generator=gen)
    a = -torch.rand(heads, generator=gen)
    initial = torch.randn(3, heads, dim, n, generator=gen)
    for row, length in enumerate(lengths):
        for t in (x, b, c, dt):
            t[row, length:] = 0
    y, final = ssd_scan_rows(x, dt, a, b, c, 32, initial)
    for row, length in enumerate(lengths):
        y1, f1 = ssd_scan(x[row, :length], dt[row, :length], a, b[row, :length], c[row, :length], 32, initial[row])
        torch.testing.assert_close(y[row, :length], y1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(final[row], f1, rtol=1e-5, atol=1e-5)


def test_a_bad_row_is_rejected_by_index_before_any_state_changes(model):
    rng = random.Random(3)
    full, (ok, _) = model.new_state(8), twin_states(model, rng, 10)
    model.append(full, list(range(5, 11)))
    before = ok.checkpoint()
    with pytest.raises(RowRejected) as info:
        model.append_batch([ok, full], [[7, 8, 9], [7, 8, 9]])
    assert info.value.row == 1 and "exceed" in str(info.value.error)
    assert ok.cursor == before.cursor and torch.equal(ok.logits, before.logits)
    with pytest.raises(RowRejected) as info:
        model.append_batch([ok, full], [[7, 99999], [7]])
    assert info.value.row == 0 and "vocabulary" in str(info.value.error)


@pytest.mark.parametrize("kind", ["dense", "superlinear"])
def test_the_tiny_random_checkpoints_dense_and_superlinear_match_each_row_alone(kind, dense_dir, superlinear_dir):
    """The dense-attention path (rows one at a time) and the tiny Superlinear config give each row's own result."""
    tiny = TorchModel.from_dir(dense_dir if kind == "dense" else superlinear_dir)
    rng = random.Random(random.randrange(1 << 30))
    pairs = [twin_states(tiny, rng, n) for n in (0, 7, 30, 33, 100)]
    runs = [[rng.randrange(5, 500) for _ in range(w)] for w in (9, 70, 2, 16, 5)]
    tiny.append_batch([a for a, _ in pairs], runs)
    for (a, b), run in zip(pairs, runs, strict=True):
        tiny.append(b, run)
        assert a.cursor == b.cursor
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)
