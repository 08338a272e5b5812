"""Context-parallel Superlinear attention in 2 and 3 gloo ranks equals the single-process reference (and
context-parallel dense attention equals SDPA).

Each case runs the sharded prefill (in several query blocks), a chunk at the end and two decode steps in
spawned ranks, and compares the anchors each rank selects and its outputs with the reference's.
"""

import pytest
import torch

from superlinear.adapters.distributed import spawn_ranks
from superlinear.kernels import SuperlinearParams
from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference
from superlinear.kernels.superlinear.parallel import (
    PositionShards,
    context_parallel_attention,
    context_parallel_dense_attention,
    local_top_k,
    merge_top_k,
)
from superlinear.kernels.superlinear.search.reference import all_stripe_offsets, route

TINY = SuperlinearParams(sw_index=1, num_spans=2, backward_factor=3.0, forward_factor=1.0)
RELEASED = SuperlinearParams(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
POWER_055 = SuperlinearParams(
    sw_index=3, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)


def _case(params, length, shard_block, *, ties=False, batch=2, q_heads=4, kv_heads=2, dim=16, calls=None):
    gen = torch.Generator().manual_seed(length * 31 + shard_block)
    if ties:
        # Small integer entries: many anchors score exactly alike, so tie-breaking decides the selection.
        def make(h, n):
            return torch.randint(-1, 2, (batch, h, n, dim), generator=gen).float()
    else:

        def make(h, n):
            return torch.randn(batch, h, n, dim, generator=gen)

    q1, q2 = make(q_heads, length), make(q_heads, length)
    k, v = make(kv_heads, length), torch.randn(batch, kv_heads, length, dim, generator=gen)
    calls = calls or _calls(length)
    return {"params": params, "block": shard_block, "q1": q1, "q2": q2, "k": k, "v": v, "calls": calls}


def _calls(length: int) -> list[tuple[int, int]]:
    """(first, stop) query ranges: the full prefill, a chunk at the end, two decode steps."""
    return [(0, length), (length - 37, length), (length - 1, length), (length // 2, length // 2 + 1)]


def _sharded(rank: int, world: int, cases: list[dict]) -> list[dict]:
    results = []
    for case in cases:
        shards = PositionShards(world, rank, case["block"])
        params, q1, q2 = case["params"], case["q1"], case["q2"]
        outputs, selected, dense = [], [], []
        for first, stop in case["calls"]:
            mine = shards.positions(0, stop)
            k, v = case["k"][:, :, mine], case["v"][:, :, mine]
            positions = torch.arange(first, stop)
            outputs.append(
                context_parallel_attention(
                    q1[:, :, first:stop],
                    q2[:, :, first:stop],
                    k,
                    v,
                    positions,
                    params=params,
                    shards=shards,
                    block_q=64,
                )
            )
            starts = torch.zeros(q1.shape[0], dtype=torch.int64)
            offsets = all_stripe_offsets(params, stop - 1)
            local = local_top_k(q1[:, :, first:stop], k, positions, starts, offsets, params, shards)
            selected.append(merge_top_k(*local, params.num_spans)[0])
            dense.append(
                context_parallel_dense_attention(q2[:, :, first:stop], k, v, positions, shards=shards)
            )
        results.append({"outputs": outputs, "anchors": selected, "dense": dense})
    return results


def _reference(case: dict) -> dict:
    params, q1, q2, k, v = case["params"], case["q1"], case["q2"], case["k"], case["v"]
    outputs, anchors, dense = [], [], []
    starts = torch.zeros(q1.shape[0], dtype=torch.int64)
    for first, stop in case["calls"]:
        positions = torch.arange(first, stop)
        outputs.append(
            superlinear_attention_reference(
                q1[:, :, first:stop],
                q2[:, :, first:stop],
                k[:, :, :stop],
                v[:, :, :stop],
                positions,
                None,
                params,
            )
        )
        offsets = all_stripe_offsets(params, stop - 1)
        routing = route(q1[:, :, first:stop], k, positions, starts, None, params, offsets)
        anchors.append(routing.anchors)
        visible = torch.arange(stop)[None, :] <= positions[:, None]  # [LQ, stop]
        dense.append(
            torch.nn.functional.scaled_dot_product_attention(
                q2[:, :, first:stop], k[:, :, :stop], v[:, :, :stop], attn_mask=visible, enable_gqa=True
            )
        )
    return {"outputs": outputs, "anchors": anchors, "dense": dense}


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_attention_selects_and_computes_what_one_process_does(world):
    cases = [
        _case(TINY, 301, 16),
        _case(POWER_055, 257, 7, batch=1, q_heads=6, kv_heads=3),
        _case(TINY, 200, 5, ties=True),
        # Fewer positions than one cycle of blocks: the last rank holds no key at all.
        _case(TINY, 40, 32, batch=1),
        # The released model's settings (window 2032, p = s = 0.55) past the window: a chunk and a decode.
        _case(RELEASED, 3001, 256, batch=1, q_heads=2, kv_heads=1, calls=[(2990, 3001), (2500, 2501)]),
    ]
    ranks = spawn_ranks(_sharded, world, cases, timeout_s=60)
    for case, *per_rank in zip(cases, *ranks, strict=True):
        expected = _reference(case)
        for got in per_rank:
            for anchors, want in zip(got["anchors"], expected["anchors"], strict=True):
                assert torch.equal(anchors, want)
            for out, want in zip(got["outputs"], expected["outputs"], strict=True):
                torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
            for out, want in zip(got["dense"], expected["dense"], strict=True):
                torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        for other in per_rank[1:]:
            for out, first_rank in zip(other["outputs"], per_rank[0]["outputs"], strict=True):
                assert torch.equal(out, first_rank)


def test_positions_are_dealt_in_blocks_and_local_intervals_are_exact():
    shards = [PositionShards(3, r, 4) for r in range(3)]
    owner = torch.cat([torch.full((4,), r) for r in range(3)] * 3)[:33]
    for r, layout in enumerate(shards):
        mine = layout.positions(0, 33)
        assert torch.equal(mine, torch.nonzero(owner == r).flatten())
        for lo in range(0, 33):
            for hi in range(lo - 1, 33):
                local_lo, local_hi = layout.local_interval(torch.tensor(lo), torch.tensor(hi))
                expected = torch.nonzero((mine >= lo) & (mine <= hi)).flatten()
                got = torch.arange(int(local_lo), int(local_hi) + 1)
                assert torch.equal(got, expected)
        assert layout.count_below(33) == mine.numel()
    with pytest.raises(ValueError, match="layout"):
        PositionShards(2, 2, 4)
