"""TorchModel as a ModelPort: the shipped default model, chunked append, sampling, state round trips."""

from __future__ import annotations

import random

import pytest
import torch

from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel, sample_token
from superlinear.core.errors import ContextLengthExceeded, InvalidRequest, SnapshotError
from superlinear.core.ports.model import ModelPort
from superlinear.core.values import SamplingParams


@pytest.fixture(scope="module")
def default_model() -> TorchModel:
    return TorchModel.from_dir(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def tiny(dense_dir) -> TorchModel:
    return TorchModel.from_dir(dense_dir, chunk_size=16)


def test_the_shipped_default_model_loads_and_gives_finite_logits(default_model):
    assert isinstance(default_model, ModelPort)
    info = default_model.info
    assert info.vocab_size == 1024 and info.name == "superlinear-tiny" and info.dtype == "float32"
    assert set(info.fingerprint) == {"model_type", "config_sha256", "weights_sha256", "dtype", "kernel"}
    assert info.fingerprint["kernel"].startswith("superlinear(sw_index=15,num_spans=3")
    assert default_model.eos_token_ids == (1,)
    state = default_model.new_state(4096)
    default_model.append(state, list(range(5, 205)))
    assert default_model.length(state) == 200 and torch.isfinite(state.logits).all()
    assert state.logits.shape == (1024,) and state.logits.std() > 0.1


def test_append_in_small_chunks_equals_one_big_chunk(tiny, dense_dir):
    big = TorchModel.from_dir(dense_dir, chunk_size=8192)
    ids = [random.Random(1).randrange(512) for _ in range(70)]
    small_state, big_state = tiny.new_state(100), big.new_state(100)
    tiny.append(small_state, ids)
    big.append(big_state, ids)
    torch.testing.assert_close(small_state.logits, big_state.logits, atol=1e-4, rtol=1e-4)


def test_append_past_the_maximum_length_raises_and_changes_nothing(tiny):
    state = tiny.new_state(20)
    tiny.append(state, list(range(15)))
    before = state.logits.clone()
    with pytest.raises(ContextLengthExceeded):
        tiny.append(state, list(range(6)))
    assert tiny.length(state) == 15 and torch.equal(state.logits, before)
    with pytest.raises(InvalidRequest, match="outside the vocabulary"):
        tiny.append(state, [512])


def test_greedy_sampling_is_the_argmax(tiny):
    state = tiny.new_state(50)
    tiny.append(state, [3, 1, 4, 1, 5, 9, 2, 6])
    token = tiny.sample(state, SamplingParams(temperature=0.0), random.Random(0))
    assert token == int(torch.argmax(state.logits))


def test_the_same_seed_gives_the_same_tokens_and_another_seed_other_tokens():
    logits = torch.randn(512, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.5)

    def draw(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [sample_token(logits, params, rng) for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_top_k_and_top_p_restrict_the_candidates():
    logits = torch.tensor([5.0, 4.0, 3.0, 0.0, -1.0, -2.0])
    rng = random.Random(0)
    top2 = {sample_token(logits, SamplingParams(temperature=5.0, top_k=2), rng) for _ in range(200)}
    assert top2 == {0, 1}
    # Probabilities ~ .66/.24/.09: top_p 0.8 keeps the first two.
    nucleus = {sample_token(logits, SamplingParams(temperature=1.0, top_p=0.8), rng) for _ in range(300)}
    assert nucleus == {0, 1}


def test_sampling_an_empty_state_is_refused(tiny):
    with pytest.raises(InvalidRequest):
        tiny.sample(tiny.new_state(10), SamplingParams(), random.Random(0))


def test_port_round_trip_export_import_checkpoint_restore_fork(tiny):
    state = tiny.new_state(200)
    tiny.append(state, list(range(40)))
    arrays = dict(tiny.export_state(state))
    copy = tiny.import_state(arrays, 300)
    assert tiny.max_len(copy) == 300 and tiny.length(copy) == 40
    cp = tiny.checkpoint(copy)
    tiny.append(copy, [7, 8, 9])
    tiny.restore(copy, cp)
    fork = tiny.fork(copy)
    for s in (state, copy, fork):
        tiny.append(s, [10, 11])
    torch.testing.assert_close(copy.logits, state.logits, atol=0, rtol=0)
    torch.testing.assert_close(fork.logits, state.logits, atol=0, rtol=0)
    with pytest.raises(ContextLengthExceeded):
        tiny.import_state(arrays, 39)
    arrays.pop("layers.0.conv")
    with pytest.raises(SnapshotError, match="layers.0.conv"):
        tiny.import_state(arrays, 300)


def test_resize_stops_at_the_tokens_held_and_nbytes_reflects_the_state(tiny):
    state = tiny.new_state(1000)
    empty = tiny.nbytes(state)
    tiny.append(state, list(range(30)))
    assert tiny.nbytes(state) > empty
    tiny.resize(state, 10)
    assert tiny.max_len(state) == 30
    tiny.release(state)
    assert tiny.nbytes(state) == 0


@pytest.mark.parametrize("fixture", ["superlinear_dir", "dense_dir"])
def test_bfloat16_on_cpu_gives_the_float32_logits_within_bfloat16_tolerance(fixture, request):
    directory = request.getfixturevalue(fixture)
    ids = [random.Random(7).randrange(512) for _ in range(60)]
    logits = {}
    for dtype in ("float32", "bfloat16"):
        model = TorchModel.from_dir(directory, dtype=dtype, chunk_size=24)
        assert model.info.dtype == dtype and model.lm.lm_head.weight.dtype == getattr(torch, dtype)
        state = model.new_state(128)
        model.append(state, ids)
        for token in (5, 6, 7, 8):
            model.append(state, [token])
        logits[dtype] = state.logits
    exact, low = logits["float32"], logits["bfloat16"]
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    # bf16 keeps 8 significant bits (relative step 2**-8); through 9 layers the logits drift ~2%.
    relative = float((low - exact).norm() / exact.norm())
    assert 1e-4 < relative < 0.05


def test_bytes_for_matches_a_state_filled_to_capacity():
    from superlinear.adapters import TorchModel, default_model_dir

    model = TorchModel.from_dir(default_model_dir())
    state = model.new_state(4096)
    model.append(state, list(range(10, 10 + 300)))
    cap = state.capacity
    assert model.bytes_for(cap) == model.nbytes(state)
    assert model.bytes_for(300) <= model.nbytes(state) <= 2 * model.bytes_for(300)


def test_the_default_kv_budget_leaves_headroom_below_free_host_memory():
    import os

    from superlinear.adapters.memory import HEADROOM_FRACTION, default_kv_budget

    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    budget = default_kv_budget("cpu")
    assert 0 < budget <= free * (1 - HEADROOM_FRACTION) * 1.05


def test_bytes_for_is_what_a_state_filled_to_its_capacity_holds(tiny):
    for tokens in (1, 37):
        state = tiny.new_state(tokens)
        tiny.append(state, list(range(tokens)))
        assert tiny.nbytes(state) == tiny.bytes_for(tokens)
    assert tiny.bytes_for(38) > tiny.bytes_for(37)
