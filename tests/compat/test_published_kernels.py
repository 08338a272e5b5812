"""Kernel calls written for the published package (positional, ``topk``, its defaults) give the exact math.

"Exact math" is ``superlinear_attention`` with the same parameters (the docs/attention.md reference on CPU),
on fresh random inputs each run.
"""

import random

import pytest
import torch

from superlinear.kernels import SuperlinearParams, superlinear_attention


@pytest.fixture(autouse=True)
def seeded():
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(batch=2, q_heads=4, kv_heads=2, length=300, dim=16):
    q1, q2 = torch.randn(2, batch, q_heads, length, dim).unbind(0)
    k, v = torch.randn(2, batch, kv_heads, length, dim).unbind(0)
    return q1, q2, k, v, torch.arange(length)


def exact(q1, q2, k, v, positions, mask=None, **fields):
    return superlinear_attention(q1, q2, k, v, positions, mask, params=SuperlinearParams(**fields))


def close(a, b, tol=1e-5):
    return (a.double() - b.double()).abs().max().item() <= tol


def test_published_prefill_positional_call_equals_the_exact_math():
    from superlinear.attention import fused_prefill_with_swtriton_gqa

    q1, q2, k, v, pos = inputs()
    # Positional, in the published order: cache_pos, attention_mask, sw_index, num_spans, block_k,
    # search_block_q, backward_factor, forward_factor, span_power, search_power, inv_search_power_int.
    out = fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos, None, 3, 2, 64, 128, 3.0, 1.0, 0.5, None, 2)
    assert close(
        out, exact(q1, q2, k, v, pos, sw_index=3, num_spans=2, backward_factor=3.0, forward_factor=1.0)
    )
    # The published defaults: sw_index=0, num_spans=3, backward_factor=2.0, forward_factor=0.0.
    default = fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos)
    assert close(
        default, exact(q1, q2, k, v, pos, sw_index=0, num_spans=3, backward_factor=2.0, forward_factor=0.0)
    )
    # cache_position may be given by keyword instead.
    assert torch.equal(fused_prefill_with_swtriton_gqa(q1, q2, k, v, cache_position=pos), default)


def test_topk_is_honoured_and_differs_from_the_default():
    from superlinear.attention import fused_prefill_with_swtriton_gqa, prefill

    q1, q2, k, v, pos = inputs()
    kw = dict(sw_index=2, backward_factor=1.0)
    two = fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos, topk=2, **kw)
    assert close(two, exact(q1, q2, k, v, pos, num_spans=2, forward_factor=0.0, **kw))
    three = fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos, **kw)
    assert not close(two, three, tol=1e-3)
    assert close(prefill(q1, q2, k, v, pos, topk=2, **kw), two)


def test_published_decode_defaults_and_positional_topk():
    from superlinear.span import decode_span_attention_staged, decode_span_attention_staged_gqa

    q1, q2, k, v, pos = inputs()
    last = (q1[:, :, -1:], q2[:, :, -1:], k, v, pos[-1:])
    # Published decode defaults: sw_index=0, topk=3, backward_factor=2.0, forward_factor=0.0.
    full = exact(q1, q2, k, v, pos, sw_index=0, num_spans=3, backward_factor=2.0, forward_factor=0.0)
    assert close(decode_span_attention_staged_gqa(*last), full[:, :, -1:])
    # Positional: attention_mask, sw_index, topk, enable_gqa, block_k, backward_factor, forward_factor.
    out = decode_span_attention_staged_gqa(*last, None, 3, 2, True, 64, 3.0, 1.0)
    full = exact(q1, q2, k, v, pos, sw_index=3, num_spans=2, backward_factor=3.0, forward_factor=1.0)
    assert close(out, full[:, :, -1:])
    mha = inputs(q_heads=2, kv_heads=2)
    out = decode_span_attention_staged(*(x[:, :, -1:] for x in mha[:2]), *mha[2:4], mha[4][-1:], None, 3, 2)
    full = exact(*mha, sw_index=3, num_spans=2, backward_factor=2.0, forward_factor=0.0)
    assert close(out, full[:, :, -1:])
    with pytest.raises(ValueError, match="HQ"):
        decode_span_attention_staged(*last)


def test_every_prefill_name_computes_the_same_function():
    from superlinear import attention

    q1, q2, k, v, pos = inputs(q_heads=2, kv_heads=2, length=200)
    expected = exact(q1, q2, k, v, pos, sw_index=2, num_spans=3, backward_factor=2.0, forward_factor=0.0)
    for name in (
        "fused_prefill_with_swtriton_gqa",
        "fused_prefill_with_swtriton_bucketed_gqa",
        "prefill",
        "prefill_gqa",
        "prefill_mha",
        "prefill_bucketed",
        "prefill_bucketed_gqa",
        "full_span_attention_fused_with_search_values",
        "full_span_attention_fused_with_search_values_gqa",
    ):
        assert close(getattr(attention, name)(q1, q2, k, v, pos, None, 2), expected), name
    assert close(attention.fused_prefill_with_swtriton(q1, q2, k, v, pos, None, 2, 3), expected)
    mask = attention.build_sw_blockmask(2, 200, 200, 2, cache_position=pos)
    assert close(attention.fused_prefill_with_swflex(q1, q2, k, v, pos, None, mask, 2, 3), expected)
    with pytest.raises(ValueError, match="sw_block_mask"):
        attention.fused_prefill_with_swflex_gqa(q1, q2, k, v, pos, None, mask, 3, 3)
    with pytest.raises(ValueError, match="key_cache_position"):
        attention.fused_prefill_with_swtriton(q1, q2, k, v, pos, None, 2, 3, key_cache_position=pos + 1)


def test_unknown_keywords_and_bad_knobs_are_refused():
    from superlinear.attention import fused_prefill_with_swtriton_gqa
    from superlinear.span import decode_span_attention_staged_gqa

    q1, q2, k, v, pos = inputs(length=40)
    with pytest.raises(TypeError, match="num_warps"):
        fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos, num_warps=4)
    with pytest.raises(TypeError, match="num_spans"):
        decode_span_attention_staged_gqa(q1[:, :, -1:], q2[:, :, -1:], k, v, pos[-1:], num_spans=2)
    with pytest.raises(TypeError, match="cache_pos"):
        fused_prefill_with_swtriton_gqa(q1, q2, k, v)
    with pytest.raises(ValueError, match="block_k"):
        fused_prefill_with_swtriton_gqa(q1, q2, k, v, pos, block_k=0)
    with pytest.raises(ValueError, match="force_mode"):
        decode_span_attention_staged_gqa(q1[:, :, -1:], q2[:, :, -1:], k, v, pos[-1:], force_mode="dense")
    for mode in (None, "sdpa", "span"):
        decode_span_attention_staged_gqa(q1[:, :, -1:], q2[:, :, -1:], k, v, pos[-1:], force_mode=mode)


@pytest.mark.parametrize(
    "field, value",
    [
        ("span_power", 0.5501),
        ("search_power", 1 / 1024),
        ("backward_factor", 2.0001),
        ("forward_factor", 1 / 3000),
    ],
)
def test_parameters_that_are_not_exact_fractions_are_refused(field, value):
    from superlinear.attention import prefill

    q1, q2, k, v, pos = inputs(length=20)
    with pytest.raises(ValueError, match=f"{field}.*denominator <= 1000"):
        prefill(q1, q2, k, v, pos, **{field: value})
    # Exactly representable values (0.55 = 11/20) are fine.
    prefill(q1, q2, k, v, pos, span_power=0.55, search_power=0.55, backward_factor=2.5)


def test_search_then_span_attention_then_gate_rebuilds_the_prefill():
    """span_search + compute_qend_from_qanchor + fused_span_attention_gqa + softmax gate = prefill."""
    from superlinear.common import compute_qend_from_qanchor
    from superlinear.search import span_search
    from superlinear.span import fused_span_attention_gqa

    q1, q2, k, v, pos = inputs(length=260)
    mask = torch.ones(2, 260, dtype=torch.long)
    mask[1, :37] = 0  # left padding on the second row
    kw = dict(sw_index=2, span_power=0.5, inv_search_power_int=2)
    qstart, anchor, values = span_search(q1, k, pos, mask, k=3, backward_factor=3.0, **kw)
    qend = compute_qend_from_qanchor(
        anchor, cache_position=pos, key_length=260, attention_mask=mask, forward_factor=1.0, **kw
    )
    per_span = fused_span_attention_gqa(q2, k, v, qstart, qend, pos, mask, **kw)
    logits = torch.where(torch.isinf(values).all(-1, keepdim=True), torch.zeros_like(values), values)
    rebuilt = (torch.softmax(logits, -1)[..., None] * per_span).sum(-2)
    expected = exact(
        q1, q2, k, v, pos, mask, sw_index=2, num_spans=3, backward_factor=3.0, forward_factor=1.0
    )
    valid_rows = pos >= 37
    assert close(rebuilt[0], expected[0]) and close(rebuilt[1][:, valid_rows], expected[1][:, valid_rows])


def test_search_helpers_match_their_definitions():
    from superlinear.search import get_search_mask, get_search_scores, span_search

    q1, _, k, _, pos = inputs(q_heads=2, kv_heads=2, length=120)
    qstart, qend, values = span_search(q1, k, pos, None, 1, 2)
    assert torch.allclose(get_search_scores(q1, k, qend), values)
    mask = get_search_mask(pos, torch.device("cpu"), 1, None, 1)
    for q in (0, 3, 4, 50, 119):
        anchors = {q + 1 - j * j for j in range(2, 12) if j * j <= q + 1}
        assert set(mask[0, 0, q].nonzero().flatten().tolist()) == anchors
        valid = qend[0, 0, q] >= 0
        assert set(qend[0, 0, q][valid].tolist()) <= anchors


def test_common_helpers():
    from superlinear.common import (
        derive_stripe_power_params,
        floor_nth_root,
        max_stripe_index_for_token_pos,
        window_len_from_sw_index,
    )

    assert window_len_from_sw_index(3, search_power=None, inv_search_power_int=2) == 15
    assert window_len_from_sw_index(65, search_power=0.55, inv_search_power_int=None) == 2032
    for pos in range(0, 400, 7):
        assert max_stripe_index_for_token_pos(
            pos, search_power=None, inv_search_power_int=3
        ) == floor_nth_root(pos, 3)
    assert derive_stripe_power_params(search_power=0.25, inv_search_power_int=None).triton_inv_n == 4
    with pytest.raises(ValueError, match="exactly one"):
        derive_stripe_power_params(search_power=0.5, inv_search_power_int=2)
    assert floor_nth_root(10**30, 3) == 10**10 and floor_nth_root(10**30 - 1, 3) == 10**10 - 1


def test_window_masks():
    from superlinear.span import create_sliding_window_mask, create_sort_indices, invert_sorted_matrix

    window = create_sliding_window_mask(sw_index=3)  # W = 15
    q = torch.tensor(40)
    assert [bool(window(0, 0, q, torch.tensor(kv))) for kv in (25, 26, 40, 41)] == [False, True, True, False]
    starts = torch.randint(0, 50, (1, 2, 30, 2))
    order = create_sort_indices(starts, starts + 3, 0)
    data = torch.randn(1, 2, 30)
    assert torch.equal(invert_sorted_matrix(torch.gather(data, -1, order), order), data)
