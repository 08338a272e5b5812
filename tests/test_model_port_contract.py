"""One contract suite for every ModelPort: the core's fake model and the torch model (the shipped default).

The checks speak only through the port (core/ports/model.py): a state is observed by its length, its
maximum length and what the model reports about the next token (the greedy choice and the log-probabilities
of the most likely ids). Two states are "the same" when those agree; for the torch model the numbers agree
to float rounding (a batched or chunked forward sums in another order), for the fake one exactly.
"""

from __future__ import annotations

import math
import random

import pytest

from superlinear.core.errors import ContextLengthExceeded
from superlinear.core.ports.model import ModelPort, RowRejected
from superlinear.core.testing import FakeModel
from superlinear.core.values import SamplingParams

GREEDY = SamplingParams(temperature=0.0)
TOP_N = 5
# Ids every model under test accepts (the default model's vocabulary has 1024; the fake's specials are 0-4).
LOW, HIGH = 5, 1000
LOGPROB_TOLERANCE = 1e-3


def _torch_model() -> ModelPort:
    from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel

    return TorchModel.from_dir(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module", params=["fake", "torch"])
def model(request) -> ModelPort:
    return FakeModel() if request.param == "fake" else _torch_model()


@pytest.fixture
def rng() -> random.Random:
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    return random.Random(seed)


def tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(LOW, HIGH) for _ in range(n)]


def observe(model: ModelPort, state) -> tuple:
    """What the port says about a state: its length, capacity, greedy next token and top log-probs."""
    choice = model.sample(state, GREEDY, random.Random(0))
    report = model.token_logprobs(state, GREEDY, choice, TOP_N)
    return model.length(state), model.max_len(state), choice, report


def assert_same(model: ModelPort, a, b) -> None:
    (len_a, cap_a, choice_a, rep_a), (len_b, cap_b, choice_b, rep_b) = observe(model, a), observe(model, b)
    assert (len_a, cap_a, choice_a) == (len_b, cap_b, choice_b)
    assert [i for i, _ in rep_a.top] == [i for i, _ in rep_b.top]
    values_a = [rep_a.logprob, *(v for _, v in rep_a.top)]
    values_b = [rep_b.logprob, *(v for _, v in rep_b.top)]
    assert all(math.isclose(x, y, abs_tol=LOGPROB_TOLERANCE) for x, y in zip(values_a, values_b, strict=True))


def fed(model: ModelPort, ids: list[int], max_seq_len: int = 256):
    state = model.new_state(max_seq_len)
    model.append(state, ids)
    return state


def test_the_model_is_a_model_port_that_describes_itself(model):
    assert isinstance(model, ModelPort)
    info = model.info
    assert info.vocab_size >= HIGH and info.max_seq_len > 0 and info.name
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.fingerprint.items())


def test_a_new_state_is_empty_with_the_asked_capacity(model):
    state = model.new_state(77)
    assert model.length(state) == 0 and model.max_len(state) == 77


def test_append_grows_the_state_and_one_append_equals_several(model, rng):
    ids = tokens(rng, 40)
    whole = fed(model, ids)
    assert model.length(whole) == 40
    pieces = model.new_state(256)
    for start, end in ((0, 1), (1, 17), (17, 39), (39, 40)):
        model.append(pieces, ids[start:end])
    assert_same(model, whole, pieces)


def test_append_past_the_capacity_raises_and_changes_nothing(model, rng):
    state = fed(model, tokens(rng, 10), max_seq_len=12)
    before = observe(model, state)
    with pytest.raises(ContextLengthExceeded):
        model.append(state, tokens(rng, 3))
    assert observe(model, state) == before


def test_decode_batch_equals_one_append_per_state(model, rng):
    prompts = [tokens(rng, n) for n in (3, 11, 26)]
    nexts = tokens(rng, 3)
    batched = [fed(model, p) for p in prompts]
    single = [fed(model, p) for p in prompts]
    model.decode_batch(batched, nexts)
    for state, tid in zip(single, nexts, strict=True):
        model.append(state, [tid])
    for a, b in zip(batched, single, strict=True):
        assert model.length(a) == model.length(b)
        assert_same(model, a, b)


def test_a_decode_batch_rejects_a_full_row_up_front_and_changes_no_state(model, rng):
    states = [fed(model, tokens(rng, 5), max_seq_len=8), fed(model, tokens(rng, 8), max_seq_len=8)]
    before = [observe(model, s) for s in states]
    marks = [model.checkpoint(s) for s in states]
    with pytest.raises(RowRejected) as rejected:
        model.decode_batch(states, tokens(rng, 2))
    assert rejected.value.row == 1 and isinstance(rejected.value.error, ContextLengthExceeded)
    assert [observe(model, s) for s in states] == before
    for state, mark in zip(states, marks, strict=True):
        model.restore(state, mark)
    assert [observe(model, s) for s in states] == before


def test_restore_returns_to_the_checkpoint_and_the_state_goes_on_as_before(model, rng):
    prompt, more, then = tokens(rng, 20), tokens(rng, 9), tokens(rng, 4)
    state = fed(model, prompt)
    before = observe(model, state)
    mark = model.checkpoint(state)
    model.append(state, more)
    model.append(state, [more[0]])
    model.restore(state, mark)
    assert observe(model, state) == before
    model.append(state, then)
    assert_same(model, state, fed(model, prompt + then))


def test_a_fork_is_equal_and_independent(model, rng):
    prompt = tokens(rng, 15)
    state = fed(model, prompt)
    before = observe(model, state)
    copy = model.fork(state)
    assert_same(model, state, copy)
    model.append(copy, tokens(rng, 6))
    assert model.length(copy) == 21 and observe(model, state) == before
    model.append(state, [prompt[0]])
    assert model.length(state) == 16 and model.length(copy) == 21


def test_export_then_import_gives_the_same_state(model, rng):
    prompt, then = tokens(rng, 30), tokens(rng, 3)
    state = fed(model, prompt)
    arrays = dict(model.export_state(state))
    assert arrays and all(isinstance(name, str) for name in arrays)
    copy = model.import_state(arrays, 256)
    assert_same(model, state, copy)
    model.append(copy, then)
    model.append(state, then)
    assert_same(model, state, copy)


def test_resize_never_goes_below_the_tokens_held(model, rng):
    state = fed(model, tokens(rng, 10), max_seq_len=50)
    model.resize(state, 100)
    assert model.max_len(state) == 100
    model.resize(state, 3)
    assert model.max_len(state) == 10
    with pytest.raises(ContextLengthExceeded):
        model.append(state, tokens(rng, 1))


def test_the_byte_sizes_grow_with_the_tokens_and_bound_a_live_state(model, rng):
    sizes = [model.bytes_for(n) for n in (0, 1, 100, 1000)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    state = fed(model, tokens(rng, 50))
    assert model.nbytes(state) >= model.bytes_for(50)


def test_greedy_sampling_picks_the_most_likely_token(model, rng):
    state = fed(model, tokens(rng, 12))
    _, _, choice, report = observe(model, state)
    assert report.token_id == choice and report.top[0][0] == choice
    assert report.top[0][1] == report.logprob <= 0.0
    assert [v for _, v in report.top] == sorted((v for _, v in report.top), reverse=True)


def test_release_frees_a_state_without_touching_others(model, rng):
    keep, drop = fed(model, tokens(rng, 8)), fed(model, tokens(rng, 8))
    before = observe(model, keep)
    model.release(drop)
    assert observe(model, keep) == before


def test_an_export_is_a_generator_and_a_copy_of_that_moment(model, rng):
    state = fed(model, tokens(rng, 25))
    before = observe(model, state)
    stream = model.export_state(state)
    assert iter(stream) is stream  # yielded one array at a time, not built up front
    arrays = dict(stream)
    model.append(state, tokens(rng, 7))
    assert observe(model, model.import_state(arrays, 256)) == before
