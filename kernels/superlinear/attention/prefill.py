"""Superlinear attention prefill, Triton: search, span attention, then window, merge and gate.

Three steps after the host-built position tables (``search.tables``):

1. ``search.prefill.search_spans``: anchor scores, top-k, span bounds (two kernels);
2. ``span.prefill.span_attention``: every (head, query, slot) row over its span, rows sorted by span
   start so that neighbouring rows share key tiles;
3. ``_window_gate_kernel`` (here): the sliding window ``[ws, q]`` for blocks of (query, head) rows of
   one KV group (the heads share every K/V tile), merged by log-sum-exp with each slot's span result and
   gated by the softmax of the slots' search scores (docs/attention.md steps 6-7), written in the output
   dtype.

A single query (a decode step through this entry point) runs the decode kernels of ``span.decode``.
Supported: CUDA tensors (or the Triton interpreter), fp16/bf16, head dim <= 128, fewer than 2**31 keys.
Anything else runs the PyTorch reference. The sort-based row grouping of ``span.prefill`` is this
prefill's only metadata path: there is no switch between paths.
"""

import torch
import triton
import triton.language as tl

from ...common.env import asserts_enabled
from ...common.toolkit import NO_KEY, block_d, interpreting, qk_scale
from ...common.validation import require
from ..params import SuperlinearParams
from ..search.prefill import search_spans, supports
from ..search.tables import prefill_capacity, routing_tables
from ..softmax import attend_interval, finish, gate_max, gate_weight, load_slot, merge_weights
from ..span.decode import triton_decode
from ..span.prefill import span_attention
from .reference import superlinear_attention_reference


@triton.jit
def _slot_weights(lse_w, p_i, s_max, lo_ptr, hi_ptr, score_ptr, span_lse_ptr, m_r):
    # Slot p_i's gate weight (unnormalized) and the shares of the window and of the span in the
    # log-sum-exp merge of the two (lse base 2). p_i [M]: index into [B, HQ, LQ, K].
    valid, s_i = load_slot(lo_ptr, hi_ptr, score_ptr, p_i, m_r)
    lse_i = tl.load(span_lse_ptr + p_i, mask=m_r, other=float("-inf"))
    w_w, w_i, den = merge_weights(lse_w, lse_i)
    return gate_weight(valid, s_i, s_max), w_w / den, w_i / den


@triton.jit
def _gate_slots(
    o_w,
    lse_w,
    row,
    lo_ptr,
    hi_ptr,
    score_ptr,
    span_out_ptr,
    span_lse_ptr,
    m_r,
    o_d,
    m_d,
    D: tl.constexpr,
    NUM_SPANS: tl.constexpr,
):
    # O = sum_i g_i * merge(window, span_i), g = softmax(score) over valid slots (uniform if none),
    # rearranged as c_w * O_w + sum_i c_i * O_i so only one [M, D] span tile is live at a time.
    s_max = gate_max(lo_ptr, hi_ptr, score_ptr, row * NUM_SPANS, m_r, NUM_SPANS)
    total = tl.zeros(lse_w.shape, tl.float32)
    c_w = tl.zeros(lse_w.shape, tl.float32)
    for i in tl.static_range(NUM_SPANS):
        p_i = row * NUM_SPANS + i
        weight, share_w, _ = _slot_weights(lse_w, p_i, s_max, lo_ptr, hi_ptr, score_ptr, span_lse_ptr, m_r)
        total += weight
        c_w += weight * share_w
    out = o_w * (c_w / total)[:, None]
    # A loop, not unrolled, so that one span tile at a time is in registers.
    for i in range(NUM_SPANS):
        p_i = row * NUM_SPANS + i
        weight, _, share_i = _slot_weights(lse_w, p_i, s_max, lo_ptr, hi_ptr, score_ptr, span_lse_ptr, m_r)
        p_o = span_out_ptr + p_i[:, None] * D + o_d[None, :]
        o_i = tl.load(p_o, mask=m_r[:, None] & m_d[None, :], other=0.0)
        out += (weight * share_i / total)[:, None] * o_i
    return out


@triton.jit
def _window_gate_kernel(
    q2_ptr,
    k_ptr,
    v_ptr,
    pos_ptr,
    starts_ptr,
    lo_ptr,
    hi_ptr,
    score_ptr,
    span_out_ptr,
    span_lse_ptr,
    o_ptr,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vl,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_ol,
    stride_od,
    HKV,
    LQ,
    W,
    qk_scale,
    G: tl.constexpr,
    D: tl.constexpr,
    NUM_SPANS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    F32: tl.constexpr,
):
    i_m = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    # rows: (query, head) pairs of the group, query-major, so a block's windows nearly coincide
    o_r = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_r = o_r < LQ * G
    o_q = o_r // G
    o_h = i_g * G + o_r % G
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    q = tl.load(pos_ptr + o_q, mask=m_r, other=0).to(tl.int64)
    start = tl.load(starts_ptr + i_b)
    ws = tl.maximum(q - W + 1, start)
    lo = tl.where(m_r, ws, NO_KEY).to(tl.int32)
    hi = tl.where(m_r, q, -1).to(tl.int32)
    live = lo <= hi
    p_q = q2_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + o_q[:, None] * stride_ql
    b_q = tl.load(p_q + o_d[None, :] * stride_qd, mask=live[:, None] & m_d[None, :], other=0.0)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc, m_i, l_i = attend_interval(
        acc,
        m_i,
        l_i,
        b_q,
        k_ptr + i_b * stride_kb + i_g * stride_kh,
        v_ptr + i_b * stride_vb + i_g * stride_vh,
        stride_kl,
        stride_kd,
        stride_vl,
        stride_vd,
        lo,
        hi,
        live,
        qk_scale,
        m_d,
        BLOCK_N,
        BLOCK_D,
        F32,
    )
    o_w, lse_w = finish(acc, m_i, l_i)
    row = (i_b * HKV * G + o_h) * LQ + o_q
    out = _gate_slots(
        o_w, lse_w, row, lo_ptr, hi_ptr, score_ptr, span_out_ptr, span_lse_ptr, m_r, o_d, m_d, D, NUM_SPANS
    )
    p_o = o_ptr + i_b * stride_ob + o_h[:, None] * stride_oh + o_q[:, None] * stride_ol
    tl.store(p_o + o_d[None, :] * stride_od, out.to(o_ptr.dtype.element_ty), mask=m_r[:, None] & m_d[None, :])


def triton_prefill(
    Q1,
    Q2,
    K,
    V,
    cache_position,
    attention_mask,
    params: SuperlinearParams,
    block_q=None,
    *,
    out=None,
    block_m: int = 128,
    block_n: int = 64,
):
    """Superlinear attention prefill with the Triton kernels; the reference's signature.

    Q1, Q2: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; cache_position: [LQ]; attention_mask: None or
    [B, LKV]. Arguments are assumed validated (``validate_call``). ``block_q`` (a reference knob) is
    ignored; ``out`` ([B, HQ, LQ, D], Q2's dtype) receives the result when given. A single query runs
    the decode kernels. Unsupported inputs (see ``supports``) run the reference.
    """
    if not supports(Q2, K):
        return superlinear_attention_reference(Q1, Q2, K, V, cache_position, attention_mask, params, block_q)
    out = _output(Q2, out)
    if Q2.shape[2] == 0:
        return out
    if Q2.shape[2] == 1:
        # One query (a model's decode step through this entry point): the span kernel would walk the
        # union of a few far-apart spans in one program; the decode kernels split it over the GPU.
        return triton_decode(Q1, Q2, K, V, cache_position, attention_mask, params, out=out)
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    tables = routing_tables(params, prefill_capacity(K.shape[2]), Q2.device)
    routes = search_spans(Q1, K, positions, attention_mask, tables, params.num_spans)
    span_out, span_lse = span_attention(Q2, K, V, routes, block_m=block_m, block_n=block_n)
    _window_and_gate(Q2, K, V, positions, routes, span_out, span_lse, tables.window, out, block_m, block_n)
    return out


def _window_and_gate(Q2, K, V, positions, routes, span_out, span_lse, window: int, out, block_m, block_n):
    """Attend each query to its window, merge with its spans' results, gate, and write ``out``.

    span_out [B, HQ, LQ, K, D] and span_lse [B, HQ, LQ, K] from ``span_attention``; out [B, HQ, LQ, D].
    """
    batch, q_heads, q_len, dim = Q2.shape
    kv_heads = K.shape[1]
    grid = (triton.cdiv(q_len * (q_heads // kv_heads), block_m), batch * kv_heads)
    # fmt: off
    _window_gate_kernel[grid](
        Q2, K, V, positions, routes.starts, routes.lo, routes.hi, routes.scores, span_out, span_lse, out,
        *Q2.stride(), *K.stride(), *V.stride(), *out.stride(),
        kv_heads, q_len, window, qk_scale(dim),
        G=q_heads // kv_heads, D=dim, NUM_SPANS=routes.lo.shape[-1], BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=block_d(dim), F32=interpreting(), num_warps=8, num_stages=3,
    )
    # fmt: on


def _output(Q2: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """Check a caller's ``out`` or allocate one; NaN-filled under SPAN_ATTENTION_ENABLE_ASSERTS."""
    if out is None:
        fill = float("nan") if asserts_enabled() else None
        return torch.full_like(Q2, fill) if fill is not None else torch.empty_like(Q2)
    require(
        out.shape == Q2.shape and out.dtype == Q2.dtype and out.device == Q2.device,
        f"out must be a {tuple(Q2.shape)} {Q2.dtype} tensor on {Q2.device}, got {tuple(out.shape)}",
    )
    return out
