"""The hybrid model sharded over 2 and 3 gloo ranks (context-parallel attention, expert-parallel MoE)
gives the single-process logits and greedy tokens, in chunked prefill and in decode."""

import pytest
import torch
from superlinear.adapters.distributed import spawn_ranks
from superlinear.adapters.distributed.model import ShardPlan, shard_model, sharded_state
from superlinear.adapters.distributed.moe import ExpertParallelMoE, share
from superlinear.adapters.hybrid import HybridConfig, HybridState
from superlinear.adapters.hybrid.random_weights import random_model
from superlinear.adapters.hybrid.testing import random_ids, tiny_config

PROMPT, CHUNKS, STEPS = 70, (41, 29), 6


def _model(model_type: str):
    cfg = HybridConfig.from_dict(tiny_config(model_type))
    return random_model(cfg, device="cpu", dtype=torch.float32, seed=7)


def _generate(model, state, prompt: torch.Tensor):
    """Chunked prefill of ``prompt``, then STEPS greedy tokens; returns (tokens, logits of every step)."""
    logits, start = [], 0
    with torch.inference_mode():
        for size in CHUNKS:
            logits.append(model(prompt[None, start : start + size], state, last_only=False))
            start += size
        tokens = []
        for _ in range(STEPS):
            tokens.append(int(state.logits.argmax()))
            logits.append(model(torch.tensor([[tokens[-1]]]), state))
    return tokens, logits


def _in_ranks(rank: int, world: int, model_type: str, prompt: torch.Tensor, hidden: torch.Tensor):
    """Everything one rank checks, in one spawn: the sharded generation and one expert-parallel MoE."""
    model = _model(model_type)
    moe = ExpertParallelMoE(model.layers[1].mixer, rank, world)
    with torch.inference_mode():
        moe_out = moe(hidden)
    model = shard_model(model, ShardPlan(rank, world, block=8))
    tokens, logits = _generate(model, sharded_state(model, 256), prompt)
    return {"tokens": tokens, "logits": logits, "moe": moe_out, "experts": moe.stop - moe.first}


@pytest.mark.parametrize(("world", "model_type"), [(2, "superlinear-exp"), (3, "nemotron_h")])
def test_sharded_model_generates_the_single_process_tokens(world, model_type):
    prompt, hidden = random_ids(PROMPT, seed=world), torch.randn(1, 23, 64)
    model = _model(model_type)
    with torch.inference_mode():
        want_moe = model.layers[1].mixer(hidden)
    state = HybridState.empty(model.config, 256, device="cpu", dtype=torch.float32)
    want_tokens, want_logits = _generate(model, state, prompt)
    ranks = spawn_ranks(_in_ranks, world, model_type, prompt, hidden, timeout_s=90)
    assert [r["experts"] for r in ranks] == [
        share(8, r, world)[1] - share(8, r, world)[0] for r in range(world)
    ]
    for got in ranks:
        torch.testing.assert_close(got["moe"], want_moe, rtol=1e-5, atol=1e-5)
        assert got["tokens"] == want_tokens
        for logits, want in zip(got["logits"], want_logits, strict=True):
            torch.testing.assert_close(logits, want, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["logits"], ranks[-1]["logits"], strict=True))


def test_shares_cover_every_item_once():
    for total in (1, 7, 8, 128):
        for world in (1, 2, 3, 4):
            bounds = [share(total, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
