"""The published server's cache layout re-laid as HybridState arrays: every accepted stacking continues
exactly as the original state; anything that doesn't fit the model is named."""

from __future__ import annotations

import pytest
import torch

from superlinear.adapters.hybrid.published import published_arrays
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import feed, load_checkpoint, random_ids


@pytest.fixture(scope="module")
def model(dense_dir):
    return load_checkpoint(dense_dir)


def payload(cfg, arrays, *, all_layers: bool, full_window: bool) -> dict:
    pos = int(arrays["cursor"].item())
    mamba = [i for i, k in enumerate(cfg.layer_kinds) if k == "M"]
    attention = [i for i, k in enumerate(cfg.layer_kinds) if k == "*"]
    rows = len(cfg.layer_kinds) if all_layers else len(mamba)
    width = cfg.conv_kernel if full_window else cfg.conv_kernel - 1
    conv = torch.randn(rows, 1, cfg.conv_dim, width)
    ssm = torch.randn(rows, 1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size)
    for j, i in enumerate(mamba):
        row = i if all_layers else j
        conv[row, :, :, width - (cfg.conv_kernel - 1):] = arrays[f"layers.{i}.conv"]
        ssm[row] = arrays[f"layers.{i}.ssm"]
    return {"cache_format": "hybrid_mamba_attention_static_v1", "max_seq_len": 1024, "current_pos": pos,
            "kv_layers": attention, "key_cache": {str(i): arrays[f"layers.{i}.k"] for i in attention},
            "value_cache": {str(i): arrays[f"layers.{i}.v"] for i in attention},
            "conv_states": conv, "ssm_states": ssm}


@pytest.mark.parametrize("all_layers", [True, False])
@pytest.mark.parametrize("full_window", [True, False])
def test_a_published_cache_continues_exactly_as_the_state_it_was_made_from(model, all_layers, full_window):
    ids = random_ids(40, seed=21)
    _, state = feed(model, ids[:30])
    pub = payload(model.config, dict(state.export()), all_layers=all_layers, full_window=full_window)
    arrays = published_arrays(model.config, pub)
    assert "logits" not in arrays
    imported = HybridState.from_arrays(model.config, arrays, max_seq_len=500, device="cpu", dtype=torch.float32)
    assert imported.cursor == 30 and imported.logits is None
    original, _ = feed(model, ids[30:], state=state)
    resumed, _ = feed(model, ids[30:], state=imported)
    torch.testing.assert_close(resumed, original, atol=0, rtol=0)


def test_what_does_not_fit_the_model_is_named(model):
    cfg = model.config
    _, state = feed(model, random_ids(10))
    base = dict(state.export())

    def refused(match, **change):
        pub = {**payload(cfg, base, all_layers=True, full_window=True), **change}
        with pytest.raises(ValueError, match=match):
            published_arrays(cfg, pub)

    refused("cache_format is 'other'", cache_format="other")
    refused(r"kv_layers is \[0\]", kv_layers=[0])
    refused("conv_states must be a tensor", conv_states=None)
    refused("conv_states stacks 2 layers", conv_states=torch.zeros(2, 1, cfg.conv_dim, cfg.conv_kernel))
    refused("conv_states has shape", conv_states=torch.zeros(len(cfg.layer_kinds), 1, cfg.conv_dim + 1, 4))
    attention = [i for i, k in enumerate(cfg.layer_kinds) if k == "*"]
    refused(rf"value_cache\['{attention[0]}'\] has shape",
            value_cache={str(i): base[f"layers.{i}.v"][:, :, :3] for i in attention})
    refused(r"current_pos must be a non-negative integer", current_pos=-1)
