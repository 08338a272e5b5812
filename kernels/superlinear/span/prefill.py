"""Span attention of a prefill chunk, Triton: every (query, head, slot) over its own span.

Step 6 of docs/attention.md.

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

from ...common.toolkit import LOG2_E, NO_KEY, block_d, interpreting, qk_scale  # noqa: F401 (re-exported)
from ..search.prefill import SpanRoutes
from ..softmax import attend_interval, finish

# The names this module exported before the shared toolkit (kept importable).
_attend_interval, _finish = attend_interval, finish


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
    out, lse = finish(acc, m_i, l_i)
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
        kv_heads, q_len, n_rows, qk_scale(dim),
        G=q_heads // kv_heads, D=dim, NUM_SPANS=num_spans, BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=block_d(dim), F32=interpreting(),
        num_warps=num_warps, num_stages=num_stages,
    )
    # fmt: on
    return out, lse
