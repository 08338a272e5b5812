"""Triton: attention of a block of queries over explicit key intervals, one program per (query, KV group).

The sharded prefill's local attention: every query of a block attends over its window's and each span's
local interval (``device.device_interval_attention``). A program takes one query and one KV group, rows
being (head, interval) pairs; it enumerates, once each, the chunks of ``BLOCK_N`` keys some row needs
(``span.decode._needed_chunks``: cost follows the union of the row intervals, not the cache), loads each
chunk's K/V once for all rows that meet it, and keeps an online softmax per row, so no partial buffer
and no host sync is needed. Decode (one query) keeps the decode kernels' split over many programs
(``span.decode.interval_partials``).
"""

import torch
import triton
import triton.language as tl

from ...common.toolkit import MIN_DOT_BLOCK, NO_KEY, block_d, dot, interpreting, padded_block, qk_scale
from ..softmax import finish
from ..span.decode import _needed_chunks

LN_2 = 0.6931471805599453
BLOCK_KEYS = 64


@triton.jit
def _rows_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    lo_ptr,
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
    HQ,
    HKV,
    LQ,
    L,
    qk_scale,
    G: tl.constexpr,
    D: tl.constexpr,
    INTERVALS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    F32: tl.constexpr,
):
    i_q = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    o_r = tl.arange(0, BLOCK_R)
    real = o_r < G * INTERVALS
    o_h = i_g * G + o_r // INTERVALS
    route = ((i_b * HQ + o_h) * LQ + i_q) * INTERVALS + o_r % INTERVALS
    lo = tl.load(lo_ptr + route, mask=real, other=NO_KEY).to(tl.int64)
    hi = tl.load(hi_ptr + route, mask=real, other=-1).to(tl.int64)
    live = lo <= hi
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    p_q = q_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + i_q * stride_ql + o_d[None, :] * stride_qd
    b_q = tl.load(p_q, mask=live[:, None] & m_d[None, :], other=0.0)
    start_c, count_c, offset_c, total = _needed_chunks(lo // BLOCK_N, hi // BLOCK_N, live, BLOCK_R)
    o_n = tl.arange(0, BLOCK_N)
    p_kt = k_ptr + i_b * stride_kb + i_g * stride_kh + o_n[:, None] * stride_kl + o_d[None, :] * stride_kd
    p_vt = v_ptr + i_b * stride_vb + i_g * stride_vh + o_n[:, None] * stride_vl + o_d[None, :] * stride_vd
    m_i = tl.full([BLOCK_R], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, BLOCK_D], tl.float32)
    for i_c in range(0, total):
        own = (offset_c <= i_c) & (i_c < offset_c + count_c)
        c0 = tl.sum(tl.where(own, start_c + (i_c - offset_c), 0), axis=0).to(tl.int64) * BLOCK_N
        m_kv = ((c0 + o_n) < L)[:, None] & m_d[None, :]
        b_k = tl.load(p_kt + c0 * stride_kl, mask=m_kv, other=0.0)
        b_s = dot(b_q, tl.trans(b_k), F32) * qk_scale
        o_key = c0 + o_n
        b_s = tl.where((o_key[None, :] >= lo[:, None]) & (o_key[None, :] <= hi[:, None]), b_s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(b_s, axis=1))
        # A row with no key yet keeps max -inf; shifting by 0 keeps its exponentials at 0, not NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        b_p = tl.exp2(b_s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(b_p, axis=1)
        b_v = tl.load(p_vt + c0 * stride_vl, mask=m_kv, other=0.0)
        acc = acc * alpha[:, None] + dot(b_p.to(b_v.dtype), b_v, F32)
        m_i = m_new
    out, lse = finish(acc, m_i, l_i)
    p_o = out_ptr + route[:, None] * D + o_d[None, :]
    tl.store(p_o, out, mask=real[:, None] & m_d[None, :])
    tl.store(lse_ptr + route, lse * LN_2, mask=real)


def block_interval_attention(Q, K, V, lo, hi):
    """Attention of every query over its own key intervals, online, one program per (query, KV group).

    Q: [B, HQ, LQ, D] fp16/bf16 (D <= 128); K, V: [B, HKV, L, D] (L > 0), Q's dtype; lo, hi:
    [B, HQ, LQ, I] inclusive key indices in ``[0, L)`` (``lo > hi``: empty). Returns out [B, HQ, LQ, I, D]
    fp32 (0 when empty) and the natural log-sum-exp lse [B, HQ, LQ, I] of scores ``q . k / sqrt(D)``
    (-inf when empty). No host sync.
    """
    batch, q_heads, q_len, dim = Q.shape
    kv_heads, length, intervals = K.shape[1], K.shape[2], lo.shape[-1]
    lo = lo.to(torch.int32).contiguous()
    hi = hi.to(torch.int32).contiguous()
    out = torch.empty(batch, q_heads, q_len, intervals, dim, dtype=torch.float32, device=Q.device)
    lse = torch.empty(batch, q_heads, q_len, intervals, dtype=torch.float32, device=Q.device)
    if q_len == 0 or intervals == 0:
        return out, lse
    group = q_heads // kv_heads
    # fmt: off
    _rows_kernel[(q_len, batch * kv_heads)](
        Q, K, V, lo, hi, out, lse, *Q.stride(), *K.stride(), *V.stride(),
        q_heads, kv_heads, q_len, length, qk_scale(dim),
        G=group, D=dim, INTERVALS=intervals, BLOCK_R=padded_block(group * intervals, MIN_DOT_BLOCK),
        BLOCK_N=BLOCK_KEYS, BLOCK_D=block_d(dim), F32=interpreting(), num_warps=4, num_stages=2,
    )
    # fmt: on
    return out, lse
