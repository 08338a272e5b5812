"""The sharded model's Triton paths, under the CPU interpreter in 2 gloo ranks: context-parallel attention
equals the single-device Triton decode and the reference, and expert-parallel MoE on the grouped kernels
equals the single-process MoE.

The ranks are spawned once with ``TRITON_INTERPRET=1`` (read when Triton is imported, so only fresh
processes see it); attention takes fp16 inputs, which the kernels take: ``keys_for`` must pick the
Triton path there.
"""

import pytest
import torch

from superlinear.adapters.distributed import spawn_ranks
from superlinear.adapters.hybrid import HybridConfig
from superlinear.adapters.hybrid.random_weights import random_model
from superlinear.adapters.hybrid.testing import tiny_config
from superlinear.kernels import SuperlinearParams

SEED = SuperlinearParams(
    sw_index=3, num_spans=3, backward_factor=3.0, forward_factor=1.0, inv_search_power_int=2
)
# The fp16 bounds of the single-device kernel tests (tests/kernels/test_triton_attention.py).
MAX_ABS, REL_RMS = 8e-3, 2e-3


def _inputs(seed: int, batch=2, q_heads=4, kv_heads=2, length=300, dim=16):
    gen = torch.Generator().manual_seed(seed)
    q1, q2 = (torch.randn(batch, q_heads, length, dim, generator=gen).half() for _ in range(2))
    k, v = (torch.randn(batch, kv_heads, length, dim, generator=gen).half() for _ in range(2))
    return q1, q2, k, v


def _ranked(rank: int, world: int, seed: int, calls: list[tuple[int, int]], hidden: torch.Tensor) -> dict:
    return {
        "attention": _attention(rank, world, seed, calls),
        "moe": _moe(rank, world, hidden),
        "intervals": _intervals(seed + rank),
    }


def _intervals(seed: int) -> dict:
    """``interval_partials`` on random intervals (some empty) against the reference's interval attention."""
    from superlinear.kernels.superlinear.parallel.rows import block_interval_attention
    from superlinear.kernels.superlinear.span.decode import interval_partials
    from superlinear.kernels.superlinear.span.reference import interval_attention, tile_keys_values

    gen = torch.Generator().manual_seed(seed)
    batch, q_heads, kv_heads, length, dim, count = 2, 4, 2, 300, 16, 3
    q = torch.randn(batch, q_heads, 5, dim, generator=gen).half()
    k, v = (torch.randn(batch, kv_heads, length, dim, generator=gen).half() for _ in range(2))
    lo = torch.randint(0, length, (batch, q_heads, 5, count), generator=gen)
    hi = (lo + torch.randint(-5, 200, lo.shape, generator=gen)).clamp_max(length - 1)
    # Decode: [B, HQ, I] intervals of one query; a block: [B, HQ, LQ, I] of 5 queries.
    out, lse = interval_partials(q[:, :, :1], k, v, lo[:, :, 0], hi[:, :, 0], chunk_keys=64)
    block = block_interval_attention(q, k, v, lo, hi)
    heads = torch.arange(q_heads) // (q_heads // kv_heads)
    base = ((torch.arange(batch)[:, None] * kv_heads + heads[None]) * length)[:, :, None, None]
    rows = (q.float() / dim**0.5)[:, :, :, None, :].expand(*lo.shape, dim).reshape(-1, dim)
    want = interval_attention(rows, tile_keys_values(k, v), (base + lo).reshape(-1), (base + hi).reshape(-1))
    first = torch.zeros(lo.shape, dtype=torch.bool)
    first[:, :, 0] = True
    return {
        "decode": (out.reshape(-1, dim), lse.reshape(-1)),
        "block": (block[0].reshape(-1, dim), block[1].reshape(-1)),
        "want": want,
        "first": first.reshape(-1),
        "empty": (hi < lo).reshape(-1),
    }


def _moe_layer():
    cfg = HybridConfig.from_dict(tiny_config("nemotron_h", n_routed_experts=7))
    return random_model(cfg, device="cpu", dtype=torch.float32, seed=3).layers[1].mixer


def _moe(rank: int, world: int, hidden: torch.Tensor) -> dict:
    from superlinear.adapters.distributed.moe import ExpertParallelMoE

    moe = ExpertParallelMoE(_moe_layer(), rank, world)
    flat = hidden.reshape(-1, hidden.shape[-1])
    with torch.inference_mode():
        ids, weights = moe.gate(flat)
        local = moe._local_experts(flat, ids, weights)
        return {
            "local": local,
            "local_reference": moe.reference_local_experts(flat, ids, weights),
            "prefill": moe(hidden),
            "decode": moe(hidden[:, -1:]),
        }


def _attention(rank: int, world: int, seed: int, calls: list[tuple[int, int]]) -> dict:
    from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference
    from superlinear.kernels.superlinear.parallel import PositionShards, context_parallel_attention
    from superlinear.kernels.superlinear.parallel.device import DeviceKV, keys_for
    from superlinear.kernels.superlinear.span.decode import triton_decode

    q1, q2, k, v = _inputs(seed)
    shards = PositionShards(world, rank, 16)
    result = {"sharded": [], "single": [], "reference": [], "triton": []}
    for first, stop in calls:
        mine = shards.positions(0, stop)
        local_k, local_v = k[:, :, mine], v[:, :, mine]
        result["triton"].append(isinstance(keys_for(q2, local_k, local_v), DeviceKV))
        positions = torch.arange(first, stop)
        args = (q1[:, :, first:stop], q2[:, :, first:stop])
        out = context_parallel_attention(*args, local_k, local_v, positions, params=SEED, shards=shards)
        result["sharded"].append(out)
        whole = (k[:, :, :stop], v[:, :, :stop], positions, None)
        result["reference"].append(superlinear_attention_reference(*args, *whole, SEED))
        result["single"].append(triton_decode(*args, *whole, SEED) if stop - first == 1 else None)
    return result


def _errors(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    diff = actual.double() - expected.double()
    scale = expected.double().pow(2).mean().sqrt().item()
    return diff.abs().max().item(), diff.pow(2).mean().sqrt().item() / scale


@pytest.fixture(scope="module")
def ranks():
    """One spawn of 2 interpreter ranks; returns (their results, the MoE input)."""
    seed = int(torch.randint(0, 2**31, ()).item())
    print(f"seed={seed}")
    # Decode past the window (spans on both ranks), decode inside it, and a prefill chunk of 3 queries.
    calls = [(299, 300), (40, 41), (270, 273)]
    hidden = torch.randn(1, 23, 64, generator=torch.Generator().manual_seed(seed))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        return spawn_ranks(_ranked, 2, seed, calls, hidden, timeout_s=120), hidden


def test_sharded_triton_attention_equals_the_single_device_result(ranks):
    results = [got["attention"] for got in ranks[0]]
    for got in results:
        assert all(got["triton"]), "the interpreter ranks did not take the Triton path"
        for out, want in zip(got["sharded"], got["reference"], strict=True):
            assert out.dtype == torch.float16 and out.isfinite().all()
            max_abs, rel_rms = _errors(out, want)
            assert max_abs <= MAX_ABS and rel_rms <= REL_RMS, (max_abs, rel_rms)
        for out, single in zip(got["sharded"], got["single"], strict=True):
            if single is not None:
                max_abs, rel_rms = _errors(out, single)
                assert max_abs <= MAX_ABS and rel_rms <= REL_RMS, (max_abs, rel_rms)
    for out, other in zip(results[0]["sharded"], results[1]["sharded"], strict=True):
        assert torch.equal(out, other)


@pytest.mark.parametrize("kernel", ["decode", "block"])
def test_the_interval_kernels_give_each_intervals_output_and_log_sum_exp(ranks, kernel):
    for got in ranks[0]:
        result = got["intervals"]
        want_out, want_lse = result["want"]
        rows = result["first"] if kernel == "decode" else torch.ones_like(result["first"])
        empty, want_out, want_lse = result["empty"][rows], want_out[rows], want_lse[rows]
        out, lse = result[kernel]
        assert torch.equal(torch.isinf(lse), empty) and torch.equal(torch.isinf(want_lse), empty)
        assert not empty.all()
        torch.testing.assert_close(lse[~empty], want_lse[~empty], rtol=1e-5, atol=1e-5)
        # The kernels round the probabilities to fp16 for the PV product, as the decode kernel does.
        max_abs, rel_rms = _errors(out[~empty], want_out[~empty])
        assert max_abs <= MAX_ABS and rel_rms <= REL_RMS, (max_abs, rel_rms)
        assert torch.equal(out[empty], torch.zeros_like(out[empty]))


def test_expert_parallel_moe_on_the_grouped_kernels_equals_one_process(ranks):
    results, hidden = [got["moe"] for got in ranks[0]], ranks[1]
    layer = _moe_layer()
    with torch.inference_mode():
        want_prefill, want_decode = layer(hidden), layer(hidden[:, -1:])
    for got in results:
        # Each rank's experts alone: the grouped kernels against the per-expert loop, pair for pair.
        assert got["local"].abs().sum() > 0
        torch.testing.assert_close(got["local"], got["local_reference"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["prefill"], want_prefill, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["decode"], want_decode, rtol=1e-5, atol=1e-5)
    assert not torch.equal(results[0]["local"], results[1]["local"])


@pytest.mark.parametrize("dtype", [torch.float32])
def test_keys_for_takes_the_reference_where_triton_does_not(dtype):
    from superlinear.kernels.superlinear.parallel.device import DeviceKV, keys_for

    q, k = torch.zeros(1, 2, 1, 16, dtype=dtype), torch.zeros(1, 1, 8, 16, dtype=dtype)
    assert not isinstance(keys_for(q, k, k), DeviceKV)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
RELEASED = SuperlinearParams(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
# The bf16 bounds of the single-device kernel tests.
BF16_MAX_ABS, BF16_REL_RMS = 6e-2, 1.2e-2


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("first, stop", [(20479, 20480), (20416, 20480), (700, 701)])
def test_the_sharded_path_of_one_cuda_rank_matches_the_reference(first, stop):
    from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference
    from superlinear.kernels.superlinear.parallel import PositionShards, context_parallel_attention

    q1, q2, k, v = (torch.randn(1, h, stop, 128, device="cuda").bfloat16() for h in (32, 32, 2, 2))
    positions = torch.arange(first, stop, device="cuda")
    args = (q1[:, :, first:], q2[:, :, first:], k, v, positions)
    out = context_parallel_attention(*args, params=RELEASED, shards=PositionShards(1, 0))
    want = superlinear_attention_reference(*(a.float() for a in args[:4]), positions, None, RELEASED)
    max_abs, rel_rms = _errors(out, want)
    assert max_abs <= BF16_MAX_ABS and rel_rms <= BF16_REL_RMS, (max_abs, rel_rms)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("tokens", [1, 300])
def test_grouped_local_experts_match_the_loop_on_cuda(tokens):
    from superlinear.kernels.moe import grouped_local_expert_mlp

    experts, inner, hidden, first, count = 128, 256, 512, 40, 64
    x = torch.randn(tokens, hidden, device="cuda").bfloat16()
    up = (torch.randn(count, inner, hidden, device="cuda") / hidden**0.5).bfloat16()
    down = (torch.randn(count, hidden, inner, device="cuda") / inner**0.5).bfloat16()
    ids = torch.stack([torch.randperm(experts, device="cuda")[:6] for _ in range(tokens)])
    weights = torch.rand(tokens, 6, device="cuda")
    got = grouped_local_expert_mlp(x, up, down, ids, weights, first)
    want = torch.zeros(tokens, hidden, device="cuda")
    for t, slot in torch.nonzero((ids >= first) & (ids < first + count)).tolist():
        e = int(ids[t, slot]) - first
        y = torch.relu(x[t].float() @ up[e].float().T).square() @ down[e].float().T
        want[t] += weights[t, slot] * y
    max_abs, rel_rms = _errors(got, want)
    assert max_abs <= BF16_MAX_ABS and rel_rms <= BF16_REL_RMS, (max_abs, rel_rms)
