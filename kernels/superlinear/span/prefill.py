"""Span attention of a prefill chunk, Triton: every (query, head, slot) over its own span (ATTENTION.md 6).

Rows are (query head, query, slot) triples of one (batch, KV group) sequence. Sorting the rows of each
sequence by span start puts rows with nearly the same span next to each other: consecutive queries and
the heads that picked the same stripe have spans shifted by a few keys, and a span is thousands of keys
long. A program takes ``BLOCK_M`` consecutive sorted rows, walks the union of their spans in tiles of
``BLOCK_N`` keys, and runs one tensor-core flash-attention pass for all of them, masking each row to its
own span. The union is barely longer than one span (rows per key position grow with the chunk), so
almost no work is wasted, and every K/V tile is read once for ``BLOCK_M`` rows.

Each row's result is its normalized output and log2-sum-exp (base 2: the kernels use ``exp2``), merged
with the window and gated by ``attention.prefill``.
"""

import torch
import triton
import triton.language as tl

from ..search.prefill import SpanRoutes, _dot, interpreting

LOG2_E = 1.4426950408889634
NO_KEY = tl.constexpr(2147483647)


@triton.jit
def _attend_interval(
    acc,
    m_i,
    l_i,
    b_q,
    p_k,
    p_v,
    stride_kl,
    stride_kd,
    stride_vl,
    stride_vd,
    lo,
    hi,
    live,
    qk_scale,
    m_d,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    F32: tl.constexpr,
):
    # Online-softmax attention of rows b_q [M, BLOCK_D] over the keys of one sequence, row r seeing only
    # keys in [lo[r], hi[r]] (live rows); acc [M, BLOCK_D], m_i, l_i [M] carry the state (base-2 maxima).
    n_hi = tl.max(tl.where(live, hi, -1))
    # With no live row the range is [0, -1]: a start near 2**31 would overflow the index of the
    # pipelined loop's look-ahead loads, which are then issued out of bounds.
    n_lo = tl.min(tl.where(live, lo, n_hi + 1))
    o_n = tl.arange(0, BLOCK_N)
    o_d = tl.arange(0, BLOCK_D)
    # The tile's first key enters as one int64 product; the pointers then advance by whole tiles.
    p_kt = p_k + n_lo.to(tl.int64) * stride_kl + o_n[:, None] * stride_kl + o_d[None, :] * stride_kd
    p_vt = p_v + n_lo.to(tl.int64) * stride_vl + o_n[:, None] * stride_vl + o_d[None, :] * stride_vd
    for n0 in range(n_lo, n_hi + 1, BLOCK_N):
        m_n = (n0 + o_n) <= n_hi
        m_kv = m_n[:, None] & m_d[None, :]
        b_k = tl.load(p_kt, mask=m_kv, other=0.0)
        b_s = _dot(b_q, tl.trans(b_k), F32) * qk_scale
        o_key = n0 + o_n
        m_s = (o_key[None, :] >= lo[:, None]) & (o_key[None, :] <= hi[:, None])
        b_s = tl.where(m_s, b_s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(b_s, axis=1))
        # A row with no key yet keeps max -inf; shifting by 0 keeps its exponentials at 0, not NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        b_p = tl.exp2(b_s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(b_p, axis=1)
        b_v = tl.load(p_vt, mask=m_kv, other=0.0)
        acc = acc * alpha[:, None] + _dot(b_p.to(b_v.dtype), b_v, F32)
        m_i = m_new
        p_kt += BLOCK_N * stride_kl
        p_vt += BLOCK_N * stride_vl
    return acc, m_i, l_i


@triton.jit
def _finish(acc, m_i, l_i):
    # The normalized output (0 for a row with no key) and its log2-sum-exp (-inf if none).
    has = l_i > 0
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
    return out, lse


@triton.jit
def _span_kernel(
    q2_ptr,
    k_ptr,
    v_ptr,
    lo_sorted_ptr,
    order_ptr,
    hi_ptr,
    out_ptr,
    lse_ptr,
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
    HKV,
    LQ,
    N_ROWS,
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
    o_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_m = o_m < N_ROWS
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    seg = i_bg * N_ROWS
    # row: index inside the sequence's [G, LQ, NUM_SPANS] block of the routes
    row = tl.load(order_ptr + seg + o_m, mask=m_m, other=0)
    lo = tl.load(lo_sorted_ptr + seg + o_m, mask=m_m, other=NO_KEY)
    hi = tl.load(hi_ptr + seg + row, mask=m_m, other=-1)
    live = lo <= hi
    o_h = i_g * G + row // (LQ * NUM_SPANS)
    o_q = (row // NUM_SPANS) % LQ
    p_q = q2_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + o_q[:, None] * stride_ql
    b_q = tl.load(p_q + o_d[None, :] * stride_qd, mask=live[:, None] & m_d[None, :], other=0.0)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc, m_i, l_i = _attend_interval(
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
    out, lse = _finish(acc, m_i, l_i)
    p_out = out_ptr + (seg + row)[:, None] * D + o_d[None, :]
    tl.store(p_out, out, mask=m_m[:, None] & m_d[None, :])
    tl.store(lse_ptr + seg + row, lse, mask=m_m)


def span_attention(
    Q2,
    K,
    V,
    routes: SpanRoutes,
    block_m: int = 128,
    block_n: int = 64,
    num_warps: int = 8,
    num_stages: int = 3,
):
    """Attend every (query head, query, slot) row to its span alone.

    Q2: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; routes: from ``search_spans`` ([B, HQ, LQ, K] bounds).
    Returns out [B, HQ, LQ, K, D] fp32 (0 for an invalid slot) and lse [B, HQ, LQ, K] fp32, base 2
    (-inf for an invalid slot).
    """
    batch, q_heads, q_len, dim = Q2.shape
    kv_heads = K.shape[1]
    num_spans = routes.lo.shape[-1]
    n_rows = (q_heads // kv_heads) * q_len * num_spans
    # Sort each (batch, KV group) sequence's rows by span start; invalid slots (lo = LKV) go last.
    # A stable sort keeps the grouping, hence the summation order, the same from run to run.
    lo_sorted, order = torch.sort(routes.lo.view(batch * kv_heads, n_rows), dim=1, stable=True)
    out = torch.empty(*routes.lo.shape, dim, dtype=torch.float32, device=Q2.device)
    lse = torch.empty(routes.lo.shape, dtype=torch.float32, device=Q2.device)
    grid = (triton.cdiv(n_rows, block_m), batch * kv_heads)
    # fmt: off
    _span_kernel[grid](
        Q2, K, V, lo_sorted, order, routes.hi, out, lse,
        *Q2.stride(), *K.stride(), *V.stride(),
        kv_heads, q_len, n_rows, LOG2_E / dim**0.5,
        G=q_heads // kv_heads, D=dim, NUM_SPANS=num_spans, BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=max(16, triton.next_power_of_2(dim)), F32=interpreting(),
        num_warps=num_warps, num_stages=num_stages,
    )
    # fmt: on
    return out, lse
