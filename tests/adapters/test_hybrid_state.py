"""HybridState: export/import, checkpoint/restore, fork, memory proportional to tokens, resize."""

from __future__ import annotations

import pytest
import torch

from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import feed, load_checkpoint, random_ids


@pytest.fixture(scope="module")
def model(dense_dir):
    return load_checkpoint(dense_dir)


def new_state(model, max_seq_len: int = 10_000) -> HybridState:
    return HybridState.empty(model.config, max_seq_len, device="cpu", dtype=torch.float32)


def test_an_exported_then_imported_state_continues_identically(model):
    ids = random_ids(60, seed=10)
    _, state = feed(model, ids[:45])
    arrays = dict(state.export())
    assert arrays["layers.3.k"].shape == (1, 2, 45, 16)
    assert set(arrays) >= {"cursor", "logits", "layers.0.conv", "layers.0.ssm"}
    imported = HybridState.from_arrays(
        model.config, arrays, max_seq_len=500, device="cpu", dtype=torch.float32
    )
    assert imported.cursor == 45 and imported.max_seq_len == 500
    torch.testing.assert_close(imported.logits, state.logits)
    kept = {name: t.clone() for name, t in arrays.items()}
    original, _ = feed(model, ids[45:], state=state)
    resumed, _ = feed(model, ids[45:], state=imported)
    torch.testing.assert_close(resumed, original, atol=0, rtol=0)
    # The exported arrays are copies: the states moving on left them untouched.
    assert all(torch.equal(arrays[name], kept[name]) for name in kept)


def test_importing_arrays_with_a_missing_or_misshapen_array_fails_clearly(model):
    _, state = feed(model, random_ids(12))
    arrays = dict(state.export())
    with pytest.raises(ValueError, match=r"missing arrays \['layers.0.ssm'\]"):
        HybridState.from_arrays(
            model.config,
            {k: v for k, v in arrays.items() if k != "layers.0.ssm"},
            max_seq_len=100,
            device="cpu",
            dtype=torch.float32,
        )
    arrays["layers.3.v"] = arrays["layers.3.v"][:, :, :5]
    with pytest.raises(ValueError, match="array 'layers.3.v' has shape"):
        HybridState.from_arrays(model.config, arrays, max_seq_len=100, device="cpu", dtype=torch.float32)


def test_restoring_a_checkpoint_undoes_appends_exactly(model):
    ids = random_ids(50, seed=11)
    _, state = feed(model, ids[:30])
    cp = state.checkpoint()
    logits_at_cp = state.logits.clone()
    feed(model, random_ids(17, seed=12), state=state)
    state.restore(cp)
    assert state.cursor == 30
    torch.testing.assert_close(state.logits, logits_at_cp, atol=0, rtol=0)
    after_restore, _ = feed(model, ids[30:], state=state)
    straight, _ = feed(model, ids)
    torch.testing.assert_close(after_restore, straight[30:], atol=1e-5, rtol=1e-5)


def test_a_checkpoint_is_refused_once_an_earlier_restore_overwrote_its_tokens(model):
    _, state = feed(model, random_ids(10))
    early = state.checkpoint()
    feed(model, random_ids(5, seed=1), state=state)
    late = state.checkpoint()
    state.restore(early)
    feed(model, random_ids(8, seed=2), state=state)
    with pytest.raises(ValueError, match="no longer valid"):
        state.restore(late)
    with pytest.raises(ValueError, match="another state"):
        new_state(model).restore(early)


def test_a_fork_is_independent_of_its_parent(model):
    ids = random_ids(40, seed=13)
    _, parent = feed(model, ids[:25])
    child = parent.fork()
    feed(model, random_ids(15, seed=14), state=child)
    parent_rest, _ = feed(model, ids[25:], state=parent)
    straight, _ = feed(model, ids)
    torch.testing.assert_close(parent_rest, straight[25:], atol=1e-5, rtol=1e-5)
    assert child.cursor == 40 and not torch.equal(child.logits, parent.logits)


def test_kv_memory_grows_with_the_tokens_held_not_the_capacity(model):
    state = new_state(model, max_seq_len=100_000)
    empty = state.nbytes()
    feed(model, random_ids(100), state=state)
    per_token_kv = 2 * 2 * 2 * 16 * 4  # attention layers * (k, v) * kv heads * head_dim * fp32
    assert state.nbytes() - empty < 2 * 256 * per_token_kv + 512 * 4
    assert state.nbytes() < 100_000 * per_token_kv / 100
    feed(model, random_ids(300, seed=1), state=state)
    assert state.capacity >= 400 and state.nbytes() < 100_000 * per_token_kv / 50


def test_kv_capacity_stops_at_max_seq_len_and_resize_never_goes_below_the_tokens_held(model):
    state = new_state(model, max_seq_len=300)
    feed(model, random_ids(200), state=state)
    assert state.capacity == 256
    feed(model, random_ids(80), state=state)
    assert state.capacity == 300
    with pytest.raises(ValueError, match="exceed"):
        feed(model, random_ids(21), state=state)
    with pytest.raises(ValueError, match="holds 280 tokens"):
        state.resize(279)
    state.resize(280)
    assert state.capacity == 280 and state.max_seq_len == 280
    state.resize(1000)
    feed(model, random_ids(30), state=state)
    assert state.cursor == 310


def test_release_drops_the_tensors(model):
    _, state = feed(model, random_ids(20))
    state.release()
    assert state.nbytes() == 0 and state.cursor == 0


def test_a_state_imported_without_logits_gets_them_from_its_next_append(model):
    ids = random_ids(30, seed=13)
    _, state = feed(model, ids[:20])
    arrays = {k: v for k, v in state.export() if k != "logits"}
    imported = HybridState.from_arrays(model.config, arrays, max_seq_len=100, device="cpu", dtype=torch.float32)
    assert imported.cursor == 20 and imported.logits is None
    original, _ = feed(model, ids[20:], state=state)
    resumed, _ = feed(model, ids[20:], state=imported)
    torch.testing.assert_close(resumed, original, atol=0, rtol=0)
    torch.testing.assert_close(imported.logits, state.logits, atol=0, rtol=0)


def test_every_layer_kind_has_one_spec_and_the_export_follows_the_cache_specs(model):
    from superlinear.adapters.hybrid.config import _KIND_NAMES, LAYER_KINDS
    from superlinear.adapters.hybrid.kinds import KINDS

    assert sorted(KINDS) == sorted(LAYER_KINDS)
    # Each spec's name is one a config's `layers_block_type` may use for that kind.
    assert all(_KIND_NAMES[kind.name] == symbol for symbol, kind in KINDS.items())
    cfg = model.config
    _, state = feed(model, random_ids(21, seed=5))
    exported = list(state.export())
    expected = [("cursor", (1,), torch.int64)]
    for i, symbol in enumerate(cfg.layer_kinds):
        cache = KINDS[symbol].cache
        specs = {} if cache is None else cache.arrays(cfg, 21, torch.float32)
        expected += [(f"layers.{i}.{name}", spec.shape, spec.dtype) for name, spec in specs.items()]
    expected.append(("logits", (cfg.vocab_size,), torch.float32))
    assert [(name, tuple(a.shape), a.dtype) for name, a in exported] == expected
