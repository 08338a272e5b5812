"""Backward of interval attention, Triton: gradients of Q2, K and V through span and window rows.

The forward (``span.prefill.span_attention``) attends rows, each a (query head, query, slot) triple of one
(batch, KV group) sequence, to a contiguous key interval ``[lo, hi]``. The attention backward
(``attention.backward``) folds the log-sum-exp merge and the gate into two numbers per row, so each row
is a plain softmax row again (docs/attention-backward.md):

    P[k] = exp2(S[k] * qk_scale - lse2)          for k in [lo, hi], S = Q2 . K
    dS[k] = P[k] * (dO . V[k] - delta)
    dQ2 += sm_scale * sum_k dS[k] K[k];  dK[k] += sm_scale * dS[k] Q2;  dV[k] += P[k] dO

``lse2`` (base 2) and ``delta`` are per row. Like FlashAttention-2 the probabilities are recomputed from
the stored log-sum-exp, never stored. Two kernels:

- ``_dq_kernel``, query-major: ``BLOCK_M`` rows sorted by ``lo`` walk the union of their intervals (as the
  forward span kernel does) and add their ``dQ2`` into an fp32 buffer (atomically: a query's slots sit in
  different programs);
- ``_dkdv_kernel``, key-major: one program per ``BLOCK_N`` keys of a sequence reads every row whose
  interval can meet those keys. Rows sorted by ``lo`` make that a contiguous range: an interval is at most
  ``longest`` keys long, so rows with ``lo`` in ``[n0 - longest + 1, n0 + BLOCK_N)`` (found on the host
  by ``searchsorted``) are the only candidates; each is masked to its own interval.

Memory: O(rows) for the row tables and O(LKV * D) fp32 for dK, dV; no [LQ, LKV] tensor.
"""

import torch
import triton
import triton.language as tl

from ..search.prefill import _dot, interpreting
from .prefill import LOG2_E, NO_KEY


@triton.jit
def _load_rows(
    m_begin,
    seg,
    i_b,
    i_g,
    order_ptr,
    lo_sorted_ptr,
    hi_ptr,
    lse_ptr,
    delta_ptr,
    q2_ptr,
    do_ptr,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_ob,
    stride_oh,
    stride_ol,
    stride_od,
    N_ROWS,
    LQ,
    m_d,
    G: tl.constexpr,
    NUM_SLOTS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # BLOCK_M sorted rows from m_begin: interval, per-row statistics, Q2 and dO tiles, and the flat index
    # (b, h, q) of each row's query.
    o_m = m_begin + tl.arange(0, BLOCK_M)
    m_m = o_m < N_ROWS
    row = tl.load(order_ptr + seg + o_m, mask=m_m, other=0)
    lo = tl.load(lo_sorted_ptr + seg + o_m, mask=m_m, other=NO_KEY)
    hi = tl.load(hi_ptr + seg + row, mask=m_m, other=-1)
    live = m_m & (lo <= hi)
    lse = tl.load(lse_ptr + seg + row, mask=live, other=0.0)
    delta = tl.load(delta_ptr + seg + row, mask=live, other=0.0)
    o_h = i_g * G + row // (LQ * NUM_SLOTS)
    o_q = (row // NUM_SLOTS) % LQ
    o_d = tl.arange(0, BLOCK_D)
    m_qd = live[:, None] & m_d[None, :]
    p_q = q2_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + o_q[:, None] * stride_ql
    b_q = tl.load(p_q + o_d[None, :] * stride_qd, mask=m_qd, other=0.0)
    p_o = do_ptr + i_b * stride_ob + o_h[:, None] * stride_oh + o_q[:, None] * stride_ol
    b_do = tl.load(p_o + o_d[None, :] * stride_od, mask=m_qd, other=0.0)
    return lo, hi, live, lse, delta, b_q, b_do, o_h, o_q


@triton.jit
def _probabilities(b_q, b_k, lo, hi, live, lse, o_key, qk_scale, F32: tl.constexpr):
    # P [M, N] of rows b_q against keys b_k at positions o_key, 0 outside each row's interval.
    b_s = _dot(b_q, tl.trans(b_k), F32) * qk_scale
    inside = live[:, None] & (o_key[None, :] >= lo[:, None]) & (o_key[None, :] <= hi[:, None])
    return tl.where(inside, tl.exp2(b_s - lse[:, None]), 0.0)


@triton.jit
def _dq_kernel(
    q2_ptr, k_ptr, v_ptr, do_ptr, lo_sorted_ptr, order_ptr, hi_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vh, stride_vl, stride_vd,
    stride_ob, stride_oh, stride_ol, stride_od,
    HKV, HQ, LQ, N_ROWS, qk_scale, sm_scale,
    G: tl.constexpr, D: tl.constexpr, NUM_SLOTS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, F32: tl.constexpr,
):  # fmt: skip
    i_m = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    seg = i_bg * N_ROWS
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    lo, hi, live, lse, delta, b_q, b_do, o_h, o_q = _load_rows(
        i_m * BLOCK_M, seg, i_b, i_g, order_ptr, lo_sorted_ptr, hi_ptr, lse_ptr, delta_ptr, q2_ptr, do_ptr,
        stride_qb, stride_qh, stride_ql, stride_qd, stride_ob, stride_oh, stride_ol, stride_od,
        N_ROWS, LQ, m_d, G, NUM_SLOTS, BLOCK_M, BLOCK_D,
    )  # fmt: skip
    n_hi = tl.max(tl.where(live, hi, -1))
    n_lo = tl.min(tl.where(live, lo, n_hi + 1))
    o_n = tl.arange(0, BLOCK_N)
    p_k = k_ptr + i_b * stride_kb + i_g * stride_kh
    p_v = v_ptr + i_b * stride_vb + i_g * stride_vh
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for n0 in range(n_lo, n_hi + 1, BLOCK_N):
        o_key = n0 + o_n
        m_kv = (o_key <= n_hi)[:, None] & m_d[None, :]
        b_k = tl.load(
            p_k + o_key[:, None].to(tl.int64) * stride_kl + o_d[None, :] * stride_kd, mask=m_kv, other=0.0
        )
        b_v = tl.load(
            p_v + o_key[:, None].to(tl.int64) * stride_vl + o_d[None, :] * stride_vd, mask=m_kv, other=0.0
        )
        b_p = _probabilities(b_q, b_k, lo, hi, live, lse, o_key, qk_scale, F32)
        b_dp = _dot(b_do, tl.trans(b_v), F32)
        b_ds = b_p * (b_dp - delta[:, None])
        acc += _dot(b_ds.to(b_k.dtype), b_k, F32)
    # dq: [B, HQ, LQ, D] fp32, contiguous
    p_dq = dq_ptr + ((i_b * HQ + o_h) * LQ + o_q)[:, None] * D + o_d[None, :]
    tl.atomic_add(p_dq, acc * sm_scale, mask=live[:, None] & m_d[None, :], sem="relaxed")


@triton.jit
def _dkdv_kernel(
    q2_ptr, k_ptr, v_ptr, do_ptr, lo_sorted_ptr, order_ptr, hi_ptr, lse_ptr, delta_ptr,
    begin_ptr, end_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vh, stride_vl, stride_vd,
    stride_ob, stride_oh, stride_ol, stride_od,
    HKV, LQ, LKV, N_ROWS, N_BLOCKS, qk_scale, sm_scale,
    G: tl.constexpr, D: tl.constexpr, NUM_SLOTS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, F32: tl.constexpr,
):  # fmt: skip
    i_n = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    seg = i_bg * N_ROWS
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    o_key = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_kv = (o_key < LKV)[:, None] & m_d[None, :]
    p_k = k_ptr + i_b * stride_kb + i_g * stride_kh + o_key[:, None] * stride_kl + o_d[None, :] * stride_kd
    p_v = v_ptr + i_b * stride_vb + i_g * stride_vh + o_key[:, None] * stride_vl + o_d[None, :] * stride_vd
    b_k = tl.load(p_k, mask=m_kv, other=0.0)
    b_v = tl.load(p_v, mask=m_kv, other=0.0)
    d_k = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    d_v = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    m_begin = tl.load(begin_ptr + i_bg * N_BLOCKS + i_n)
    m_end = tl.load(end_ptr + i_bg * N_BLOCKS + i_n)
    for m0 in range(m_begin, m_end, BLOCK_M):
        lo, hi, live, lse, delta, b_q, b_do, _, _ = _load_rows(
            m0, seg, i_b, i_g, order_ptr, lo_sorted_ptr, hi_ptr, lse_ptr, delta_ptr, q2_ptr, do_ptr,
            stride_qb, stride_qh, stride_ql, stride_qd, stride_ob, stride_oh, stride_ol, stride_od,
            N_ROWS, LQ, m_d, G, NUM_SLOTS, BLOCK_M, BLOCK_D,
        )  # fmt: skip
        live &= (m0 + tl.arange(0, BLOCK_M)) < m_end
        b_p = _probabilities(b_q, b_k, lo, hi, live, lse, o_key, qk_scale, F32)
        d_v += _dot(tl.trans(b_p).to(b_do.dtype), b_do, F32)
        b_dp = _dot(b_do, tl.trans(b_v), F32)
        b_ds = b_p * (b_dp - delta[:, None])
        d_k += _dot(tl.trans(b_ds).to(b_q.dtype), b_q, F32)
    # dk, dv: [B, HKV, LKV, D] fp32, contiguous
    p_out = (i_bg * LKV + o_key)[:, None] * D + o_d[None, :]
    tl.store(dk_ptr + p_out, d_k * sm_scale, mask=m_kv)
    tl.store(dv_ptr + p_out, d_v, mask=m_kv)


def interval_backward(Q2, K, V, dO, lo, hi, lse2, delta, longest: int, block_m: int = 64, block_n: int = 64):
    """Gradients of softmax rows over contiguous key intervals; returns fp32 dQ2, dK, dV.

    Q2, dO: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; lo, hi: [B, HQ, LQ, S] inclusive int intervals
    (``lo > hi``: a dead row); lse2, delta: [B, HQ, LQ, S] fp32, base-2 log-normalizer and the row's
    ``dO . O`` term (module docstring). ``longest`` bounds every live interval's length.
    """
    batch, q_heads, q_len, dim = Q2.shape
    kv_heads, kv_len = K.shape[1], K.shape[2]
    slots = lo.shape[-1]
    n_rows = (q_heads // kv_heads) * q_len * slots
    lo_sorted, order, hi, lse2, delta = _row_tables(lo, hi, lse2, delta, batch * kv_heads)
    begin, end = _key_block_rows(lo_sorted, kv_len, block_n, longest)
    dq = torch.zeros(batch, q_heads, q_len, dim, dtype=torch.float32, device=Q2.device)
    dk = torch.empty(batch, kv_heads, kv_len, dim, dtype=torch.float32, device=Q2.device)
    dv = torch.empty_like(dk)
    common = dict(
        G=q_heads // kv_heads, D=dim, NUM_SLOTS=slots, BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=max(16, triton.next_power_of_2(dim)), F32=interpreting(), num_warps=4, num_stages=2,
    )  # fmt: skip
    strides = (*Q2.stride(), *K.stride(), *V.stride(), *dO.stride())
    qk_scale, sm_scale = LOG2_E / dim**0.5, 1.0 / dim**0.5
    _dq_kernel[(triton.cdiv(n_rows, block_m), batch * kv_heads)](
        Q2, K, V, dO, lo_sorted, order, hi, lse2, delta, dq, *strides,
        kv_heads, q_heads, q_len, n_rows, qk_scale, sm_scale, **common,
    )  # fmt: skip
    _dkdv_kernel[(begin.shape[1], batch * kv_heads)](
        Q2, K, V, dO, lo_sorted, order, hi, lse2, delta, begin, end, dk, dv,
        *strides, kv_heads, q_len, kv_len, n_rows, begin.shape[1], qk_scale, sm_scale, **common,
    )  # fmt: skip
    return dq, dk, dv


def _row_tables(lo, hi, lse2, delta, sequences: int):
    """Each (batch, KV group) sequence's rows sorted by interval start, dead rows (``lo > hi``) last.

    Returns lo_sorted [S, N] int32, order [S, N] int32 (row index of each sorted position) and hi, lse2,
    delta [S, N] in row order (dead rows get finite statistics; they are masked anyway).
    """
    dead = lo > hi
    lo = torch.where(dead, NO_KEY.value, lo).to(torch.int32).reshape(sequences, -1)
    lo_sorted, order = torch.sort(lo, dim=1, stable=True)

    def flat(x, dtype):
        return x.to(dtype).reshape(sequences, -1).contiguous()

    lse2 = flat(torch.where(dead, 0.0, lse2), torch.float32)
    delta = flat(torch.where(dead, 0.0, delta), torch.float32)
    return lo_sorted, order.to(torch.int32), flat(hi, torch.int32), lse2, delta


def _key_block_rows(lo_sorted, kv_len: int, block_n: int, longest: int):
    """For each block of ``block_n`` keys, the range of sorted rows whose interval can meet it.

    An interval ``[lo, hi]`` with ``hi - lo < longest`` meets keys ``[n0, n0 + block_n)`` only if
    ``n0 - longest < lo < n0 + block_n``. Returns begin, end [S, NB] int64 (sorted row positions).
    """
    sequences = lo_sorted.shape[0]
    n_blocks = triton.cdiv(kv_len, block_n)
    first = torch.arange(n_blocks, device=lo_sorted.device, dtype=torch.int32) * block_n
    bounds = torch.stack([first - longest + 1, first + block_n]).repeat(sequences, 1, 1)
    found = torch.searchsorted(lo_sorted, bounds.reshape(sequences, -1)).view(sequences, 2, n_blocks)
    return found[:, 0].contiguous(), found[:, 1].contiguous()
