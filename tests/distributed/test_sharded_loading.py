"""A rank's sharded load (``loading.load_sharded_model``: only its share read) equals the whole checkpoint
loaded and then sharded (``shard_model``), tensor for tensor, and refuses a bad checkpoint alike."""

import pytest
import torch

from superlinear.adapters.distributed.loading import load_sharded_model
from superlinear.adapters.distributed.model import ShardPlan, shard_model
from superlinear.adapters.hybrid import HybridConfig
from superlinear.adapters.hybrid.loader import CheckpointError, load_model
from superlinear.adapters.hybrid.testing import (
    nano_30b_narrow_config,
    random_weights,
    tiny_config,
    write_checkpoint,
)

CONFIGS = {
    "superlinear tiny": tiny_config("superlinear-exp"),
    "nemotron_h, 7 experts": tiny_config("nemotron_h", n_routed_experts=7),
    "nano30b pattern, narrow": nano_30b_narrow_config(
        "superlinear-exp", num_hidden_layers=8, hybrid_override_pattern="MEM*EMEM"
    ),
}


def _stacked(tensors: dict) -> dict:
    """The same weights with each MoE layer's experts stacked into one tensor per projection."""
    out, experts = {}, {}
    for name, tensor in tensors.items():
        parts = name.split(".")
        if "experts" in parts and parts[parts.index("experts") + 1].isdigit():
            at = parts.index("experts")
            stacked = ".".join(parts[: at + 1] + [parts[at + 2]])
            experts.setdefault(stacked, {})[int(parts[at + 1])] = tensor
        else:
            out[name] = tensor
    for name, by_expert in experts.items():
        out[name] = torch.stack([by_expert[e] for e in sorted(by_expert)])
    return out


def _assert_same_shards(directory, raw: dict, world: int, dtype=torch.float32) -> None:
    cfg = HybridConfig.from_dict(raw)
    for rank in range(world):
        plan = ShardPlan(rank, world, block=8)
        whole, _ = load_model(directory, cfg, dtype=dtype)
        want = shard_model(whole, plan).state_dict()
        got = load_sharded_model(directory, cfg, plan, dtype=dtype).state_dict()
        assert sorted(got) == sorted(want)
        for name, tensor in want.items():
            assert got[name].dtype == tensor.dtype and got[name].device == tensor.device, name
            assert torch.equal(got[name], tensor), name


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("world", [2, 3])
def test_a_ranks_share_equals_the_slice_of_the_whole_load(tmp_path, name, world):
    raw = CONFIGS[name]
    directory = write_checkpoint(tmp_path, raw, random_weights(raw, seed=world), shards=2)
    _assert_same_shards(directory, raw, world)


def test_stacked_experts_are_read_by_slice_in_bf16(tmp_path):
    raw = CONFIGS["nemotron_h, 7 experts"]
    directory = write_checkpoint(tmp_path, raw, _stacked(random_weights(raw, seed=5)))
    _assert_same_shards(directory, raw, 2, dtype=torch.bfloat16)


def test_a_bad_checkpoint_is_refused_like_the_whole_load(tmp_path):
    raw = CONFIGS["superlinear tiny"]
    tensors = random_weights(raw, seed=1)
    del tensors["backbone.norm_f.weight"]
    tensors["backbone.layers.0.norm.weight"] = torch.zeros(3)
    directory = write_checkpoint(tmp_path, raw, tensors)
    cfg = HybridConfig.from_dict(raw)
    with pytest.raises(CheckpointError) as whole:
        load_model(directory, cfg)
    with pytest.raises(CheckpointError) as sharded:
        load_sharded_model(directory, cfg, ShardPlan(1, 2))
    assert str(sharded.value) == str(whole.value)
    assert "norm_f.weight" in str(whole.value) and "layers.0.norm.weight" in str(whole.value)
