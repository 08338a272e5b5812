"""Decode, chunked prefill, GQA and batching all compute the rows of one full prefill."""

import pytest
import torch

from superlinear.kernels import SuperlinearParams, decode_span_attention_staged_gqa, superlinear_attention

FRACTIONAL = SuperlinearParams(
    sw_index=2, num_spans=3, backward_factor=2.0, forward_factor=1.0, search_power=0.55, span_power=0.45
)


def as_kwargs(params: SuperlinearParams) -> dict:
    # The decode entry point takes the published keywords: the span count is ``topk``.
    return {
        "sw_index": params.sw_index,
        "topk": params.num_spans,
        "backward_factor": params.backward_factor,
        "forward_factor": params.forward_factor,
        "search_power": params.search_power,
        "span_power": params.span_power,
        "inv_search_power_int": params.inv_search_power_int,
    }


@pytest.mark.parametrize("params", [FRACTIONAL, "seed_example"])
def test_decode_at_a_position_equals_that_row_of_the_prefill(params, request, rng, make_inputs, assert_close):
    params = request.getfixturevalue(params) if isinstance(params, str) else params
    length = 613
    Q1, Q2, K, V = make_inputs(2, 4, 2, length, 16)
    full = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=params)
    window = params.window
    for q in sorted({0, 1, window, window + 1, length - 1, *rng.sample(range(length), 10)}):
        one = (Q1[:, :, q : q + 1], Q2[:, :, q : q + 1])
        decoded = decode_span_attention_staged_gqa(*one, K, V, torch.tensor([q]), **as_kwargs(params))
        assert_close(decoded, full[:, :, q : q + 1], max_abs=1e-6, rel_rms=1e-6)
        # A cache holding only the keys up to q gives the same answer.
        cut = decode_span_attention_staged_gqa(
            *one, K[:, :, : q + 1], V[:, :, : q + 1], torch.tensor([q]), **as_kwargs(params)
        )
        assert_close(cut, decoded, max_abs=1e-6, rel_rms=1e-6)


def test_a_chunked_prefill_equals_the_full_prefill(rng, make_inputs, assert_close):
    length = 701
    Q1, Q2, K, V = make_inputs(1, 4, 1, length, 16)
    full = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=FRACTIONAL)
    cuts = sorted(rng.sample(range(1, length), 4))
    chunks = []
    for lo, hi in zip([0, *cuts], [*cuts, length], strict=True):
        # Each chunk sees the cache up to its end, as a serving loop would pass it.
        keys, values = K[:, :, :hi], V[:, :, :hi]
        chunk = superlinear_attention(
            Q1[:, :, lo:hi],
            Q2[:, :, lo:hi],
            keys,
            values,
            torch.arange(lo, hi),
            params=FRACTIONAL,
            block_q=rng.choice([7, 64, 256]),
        )
        chunks.append(chunk)
    assert_close(torch.cat(chunks, dim=2), full, max_abs=1e-6, rel_rms=1e-6)


@pytest.mark.parametrize("ratio", [2, 4])
def test_gqa_equals_mha_with_repeated_kv_heads(ratio, make_inputs, assert_close):
    length = 345
    Q1, Q2, K, V = make_inputs(2, 8, 8 // ratio, length, 16)
    gqa = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=FRACTIONAL)
    K_rep, V_rep = K.repeat_interleave(ratio, dim=1), V.repeat_interleave(ratio, dim=1)
    mha = superlinear_attention(Q1, Q2, K_rep, V_rep, torch.arange(length), params=FRACTIONAL)
    assert_close(gqa, mha, max_abs=1e-6, rel_rms=1e-6)


def test_batch_rows_with_different_left_padding_are_independent(seed_example, make_inputs, assert_close):
    length, paddings = 300, [0, 5, 71]
    # float64: a padded row's keys cut into tiles at other boundaries than the row alone, so fp32 sums run
    # in another order and differ by ~10 ulps on some seeds; the property checked is the routing and masking.
    Q1, Q2, K, V = make_inputs(3, 4, 2, length, 16, dtype=torch.float64)
    mask = torch.ones(3, length, dtype=torch.int64)
    for b, pad in enumerate(paddings):
        mask[b, :pad] = 0
    batched = superlinear_attention(Q1, Q2, K, V, torch.arange(length), mask, params=seed_example)
    for b, pad in enumerate(paddings):
        row = [x[b : b + 1, :, pad:] for x in (Q1, Q2, K, V)]
        alone = superlinear_attention(*row, torch.arange(length - pad), params=seed_example)
        assert_close(batched[b : b + 1, :, pad:], alone, max_abs=1e-6, rel_rms=1e-6)
        # Padded query positions have no keys at all.
        assert torch.equal(batched[b, :, :pad], torch.zeros_like(batched[b, :, :pad]))


def test_queries_in_any_order_give_the_same_rows(rng, make_inputs, assert_close):
    length = 257
    Q1, Q2, K, V = make_inputs(1, 2, 1, length, 8)
    full = superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=FRACTIONAL)
    order = torch.randperm(length)
    shuffled = superlinear_attention(Q1[:, :, order], Q2[:, :, order], K, V, order, params=FRACTIONAL)
    assert_close(shuffled, full[:, :, order], max_abs=1e-6, rel_rms=1e-6)


def test_block_size_does_not_change_the_result(rng, make_inputs, assert_close):
    length = 150
    Q1, Q2, K, V = make_inputs(1, 4, 2, length, 16)
    outputs = [
        superlinear_attention(Q1, Q2, K, V, torch.arange(length), params=FRACTIONAL, block_q=block)
        for block in (1, 33, 1000)
    ]
    assert_close(outputs[0], outputs[2], max_abs=1e-6, rel_rms=1e-6)
    assert_close(outputs[1], outputs[2], max_abs=1e-6, rel_rms=1e-6)
