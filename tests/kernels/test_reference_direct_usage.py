"""The seed README's "Direct Usage" snippet runs unchanged on CPU (at a smaller length)."""

import torch


def test_the_direct_usage_snippet_runs_on_cpu(assert_close):
    from superlinear.kernels.superlinear.attention import fused_prefill_with_swtriton_gqa
    from superlinear.kernels.superlinear.span import decode_span_attention_staged_gqa

    B, H_Q, H_KV, L, D = 1, 32, 8, 300, 128

    Q1 = torch.randn(B, H_Q, L, D, device="cpu", dtype=torch.bfloat16)
    Q2 = torch.randn(B, H_Q, L, D, device="cpu", dtype=torch.bfloat16)
    K = torch.randn(B, H_KV, L, D, device="cpu", dtype=torch.bfloat16)
    V = torch.randn(B, H_KV, L, D, device="cpu", dtype=torch.bfloat16)
    cache_position = torch.arange(L, device="cpu")

    # Prefill
    output = fused_prefill_with_swtriton_gqa(
        Q1, Q2, K, V, cache_position,
        sw_index=3, num_spans=3,
        backward_factor=3.0, forward_factor=1.0,
    )

    # Decode
    output_decode = decode_span_attention_staged_gqa(
        Q1[:, :, -1:], Q2[:, :, -1:], K, V, cache_position[-1:],
        sw_index=3, enable_gqa=True,
    )

    assert output.shape == (B, H_Q, L, D) and output.dtype == torch.bfloat16
    assert output_decode.shape == (B, H_Q, 1, D) and output_decode.dtype == torch.bfloat16
    assert torch.isfinite(output.float()).all()
    # The snippet's decode runs with the published decode defaults (topk=3, backward_factor=2.0,
    # forward_factor=0.0), as the published package does, so it equals the exact math with those.
    from superlinear.kernels import SuperlinearParams, superlinear_attention

    published_decode = SuperlinearParams(sw_index=3, num_spans=3, backward_factor=2.0, forward_factor=0.0)
    expected = superlinear_attention(Q1, Q2, K, V, cache_position, params=published_decode)
    assert_close(output_decode, expected[:, :, -1:], max_abs=1e-2, rel_rms=1e-3)
    # With the prefill's factors, the decode of the last position is the last prefill row.
    same = decode_span_attention_staged_gqa(
        Q1[:, :, -1:], Q2[:, :, -1:], K, V, cache_position[-1:],
        sw_index=3, enable_gqa=True, backward_factor=3.0, forward_factor=1.0,
    )
    assert_close(same, output[:, :, -1:], max_abs=1e-2, rel_rms=1e-3)
