"""Context-parallel attention on the Triton kernels (under the CPU interpreter) in 2 gloo ranks equals the
single-device Triton decode and the reference.

The ranks are spawned with ``TRITON_INTERPRET=1`` (read when Triton is imported, so only fresh processes
see it) and fp16 inputs, which the kernels take: ``keys_for`` must pick the Triton path there.
"""

import pytest
import torch
from superlinear.adapters.distributed import spawn_ranks
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


def _ranked(rank: int, world: int, seed: int, calls: list[tuple[int, int]]) -> dict:
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


def test_sharded_triton_attention_equals_the_single_device_result(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    seed = int(torch.randint(0, 2**31, ()).item())
    print(f"seed={seed}")
    # Decode past the window (spans on both ranks), decode inside it, and a prefill chunk of 3 queries.
    calls = [(299, 300), (40, 41), (270, 273)]
    ranks = spawn_ranks(_ranked, 2, seed, calls, timeout_s=120)
    for got in ranks:
        assert all(got["triton"]), "the interpreter ranks did not take the Triton path"
        for out, want in zip(got["sharded"], got["reference"], strict=True):
            assert out.dtype == torch.float16 and out.isfinite().all()
            max_abs, rel_rms = _errors(out, want)
            assert max_abs <= MAX_ABS and rel_rms <= REL_RMS, (max_abs, rel_rms)
        for out, single in zip(got["sharded"], got["single"], strict=True):
            if single is not None:
                max_abs, rel_rms = _errors(out, single)
                assert max_abs <= MAX_ABS and rel_rms <= REL_RMS, (max_abs, rel_rms)
    for out, other in zip(ranks[0]["sharded"], ranks[1]["sharded"], strict=True):
        assert torch.equal(out, other)


@pytest.mark.parametrize("dtype", [torch.float32])
def test_keys_for_takes_the_reference_where_triton_does_not(dtype):
    from superlinear.kernels.superlinear.parallel.device import DeviceKV, keys_for

    q, k = torch.zeros(1, 2, 1, 16, dtype=dtype), torch.zeros(1, 1, 8, 16, dtype=dtype)
    assert not isinstance(keys_for(q, k, k), DeviceKV)
