"""When the window covers the whole prefix, Superlinear attention is dense causal attention."""

import pytest
import torch
import torch.nn.functional as F

from superlinear.kernels import SuperlinearParams, fused_prefill_with_swtriton_gqa, superlinear_attention


def dense_causal(Q2, K, V) -> torch.Tensor:
    """SDPA with is_causal and the KV heads repeated for GQA, in float64."""
    group = Q2.shape[1] // K.shape[1]
    K, V = (x.double().repeat_interleave(group, dim=1) for x in (K, V))
    return F.scaled_dot_product_attention(Q2.double(), K, V, is_causal=True)


@pytest.mark.parametrize("length", [1, 7, 100, 333, 1000])
@pytest.mark.parametrize("ratio", [1, 2, 4])
def test_a_window_covering_the_prefix_gives_dense_causal_attention(length, ratio, make_inputs, assert_close):
    # sw_index 65 with p = 1/2 gives W = 66 ** 2 - 1 = 4355 keys, more than any length here.
    params = SuperlinearParams(sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0)
    Q1, Q2, K, V = make_inputs(2, 4, 4 // ratio, length, 16)
    out = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=params)
    assert_close(out, dense_causal(Q2, K, V))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_released_config_is_dense_below_its_window(dtype, released, make_inputs, assert_close):
    # Queries 0 .. 2031 see every key through the 2032-key window; at 2032 the nearest anchor is key 0
    # and its span [0, 0] completes the prefix.
    length = 2033
    Q1, Q2, K, V = make_inputs(1, 4, 2, length, 32, dtype=dtype)
    out = fused_prefill_with_swtriton_gqa(
        Q1,
        Q2,
        K,
        V,
        torch.arange(length),
        sw_index=65,
        num_spans=3,
        backward_factor=3.0,
        forward_factor=1.0,
        search_power=0.55,
        span_power=0.55,
    )
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    assert_close(out, dense_causal(Q2, K, V), max_abs=4 * tolerance, rel_rms=tolerance)


def test_the_seed_example_is_dense_for_its_first_sixteen_queries(seed_example, make_inputs, assert_close):
    Q1, Q2, K, V = make_inputs(1, 2, 1, 60, 8)
    out = superlinear_attention(Q1, Q2, K, V, torch.arange(60), params=seed_example)
    dense = dense_causal(Q2, K, V)
    assert_close(out[:, :, :16], dense[:, :, :16])
    # Beyond the window the output is sparse, so it must differ from dense attention somewhere.
    assert (out[:, :, 16:].double() - dense[:, :, 16:]).abs().max() > 1e-3
