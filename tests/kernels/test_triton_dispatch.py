"""The seed's entry points dispatch CUDA tensors to the Triton kernels, fall back where those don't apply,
and the decode runs under a CUDA graph."""

import pytest
import torch

from superlinear.kernels import (
    SuperlinearParams,
    decode_span_attention_staged_gqa,
    fused_prefill_with_swtriton_gqa,
)
from superlinear.kernels.common.dispatch import lazy_implementation
from superlinear.kernels.superlinear.attention.api import ACCELERATED_PREFILL
from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference
from superlinear.kernels.superlinear.span.api import ACCELERATED_DECODE
from superlinear.kernels.superlinear.span.reference import decode_reference

RELEASED_KW = dict(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
RELEASED = SuperlinearParams(**RELEASED_KW)
# The published decode names the span count ``topk``.
DECODE_KW = {("topk" if key == "num_spans" else key): value for key, value in RELEASED_KW.items()}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_is_registered_for_prefill_and_decode():
    assert "cuda" in ACCELERATED_PREFILL and "cuda" in ACCELERATED_DECODE


def test_a_lazy_implementation_falls_back_when_its_module_cannot_be_imported():
    run = lazy_implementation(".no_such_module", "kernel", "superlinear.kernels", lambda x: x + 1)
    assert run(1) == 2


def _inputs(q_len, length, dtype=torch.bfloat16, dim=128, q_heads=32, kv_heads=2):
    q1, q2 = (torch.randn(1, q_heads, q_len, dim, device="cuda").to(dtype) for _ in range(2))
    k, v = (torch.randn(1, kv_heads, length, dim, device="cuda").to(dtype) for _ in range(2))
    return q1, q2, k, v


@pytest.mark.gpu
@needs_cuda
def test_the_direct_usage_prefill_runs_triton_on_cuda():
    from superlinear.kernels.superlinear.attention.prefill import triton_prefill

    q1, q2, k, v = _inputs(300, 4000)
    positions = torch.arange(3700, 4000, device="cuda")
    api = fused_prefill_with_swtriton_gqa(q1, q2, k, v, positions, **RELEASED_KW)
    assert torch.equal(api, triton_prefill(q1, q2, k, v, positions, None, RELEASED))


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype, dim", [(torch.float32, 64), (torch.bfloat16, 256)])
def test_unsupported_cuda_inputs_fall_back_to_the_reference(dtype, dim):
    q1, q2, k, v = _inputs(50, 2500, dtype=dtype, dim=dim, q_heads=4)
    positions = torch.arange(2450, 2500, device="cuda")
    # The reference's index_add runs with atomics on CUDA, so reruns agree to rounding, not bitwise.
    bound = 1e-5 if dtype == torch.float32 else 1e-2
    api = fused_prefill_with_swtriton_gqa(q1, q2, k, v, positions, **RELEASED_KW)
    expected = superlinear_attention_reference(q1, q2, k, v, positions, None, RELEASED)
    assert (api.float() - expected.float()).abs().max().item() <= bound
    last = positions[-1:]
    decoded = decode_span_attention_staged_gqa(q1[:, :, -1:], q2[:, :, -1:], k, v, last, **DECODE_KW)
    expected = decode_reference(q1[:, :, -1:], q2[:, :, -1:], k, v, last, None, RELEASED)
    assert (decoded.float() - expected.float()).abs().max().item() <= bound


@pytest.mark.gpu
@needs_cuda
def test_decode_equals_the_last_row_of_the_triton_prefill():
    q1, q2, k, v = _inputs(9000, 9000)
    positions = torch.arange(9000, device="cuda")
    full = fused_prefill_with_swtriton_gqa(q1, q2, k, v, positions, **RELEASED_KW)
    last = decode_span_attention_staged_gqa(q1[:, :, -1:], q2[:, :, -1:], k, v, positions[-1:], **DECODE_KW)
    diff = (last.float() - full[:, :, -1:].float()).abs().max().item()
    assert diff <= 2e-2, diff


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("chunk_keys", [64, 128])
def test_the_decode_replays_under_a_cuda_graph_at_new_positions(monkeypatch, chunk_keys):
    from superlinear.kernels.superlinear.span import decode

    monkeypatch.setattr(decode, "CHUNK_KEYS", chunk_keys)
    # The expensive validation must stay out of the capture even when switched on.
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "1")
    q1, q2, k, v = _inputs(1, 50000)
    position = torch.tensor([40000], device="cuda")

    def step():
        return decode_span_attention_staged_gqa(q1, q2, k, v, position, **DECODE_KW)

    step()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for p in (3000, 49999, 40000):
        position.fill_(p)
        graph.replay()
        expected = decode_reference(q1, q2, k, v, position, None, RELEASED)
        diff = (captured.float() - expected.float()).abs().max().item()
        assert diff <= 2e-2, (p, diff)


@pytest.mark.gpu
@needs_cuda
def test_positions_beyond_the_cache_raise_before_any_launch():
    q1, q2, k, v = _inputs(1, 3000)
    with pytest.raises(ValueError, match="cache_position"):
        decode_span_attention_staged_gqa(q1, q2, k, v, torch.tensor([3000], device="cuda"), **DECODE_KW)
