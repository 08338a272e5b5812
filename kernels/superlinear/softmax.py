"""Online softmax, log-sum-exp merge and gate: the Triton pieces prefill and decode share.

Steps 6-7 of docs/attention.md.

Every partial result is a normalized output ``o`` with its log2-sum-exp ``lse`` (base 2: the kernels use
``exp2``). Two partials over disjoint key sets merge as ``(w_a o_a + w_b o_b) / (w_a + w_b)`` with
``w = 2 ** (lse - max lse)``; a key set with no key has ``lse = -inf`` and weight 0. The gate mixes the
merges of the window with each slot's span by the softmax (natural base) of the slots' search scores over
the valid slots, uniformly when no slot is valid.
"""

import triton
import triton.language as tl

from ..common.toolkit import dot


@triton.jit
def attend_interval(
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
        b_s = dot(b_q, tl.trans(b_k), F32) * qk_scale
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
        acc = acc * alpha[:, None] + dot(b_p.to(b_v.dtype), b_v, F32)
        m_i = m_new
        p_kt += BLOCK_N * stride_kl
        p_vt += BLOCK_N * stride_vl
    return acc, m_i, l_i


@triton.jit
def finish(acc, m_i, l_i):
    # The normalized output of rows acc [M, D] (0 for a row with no key) and its log2-sum-exp (-inf if none).
    has = l_i > 0
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
    return out, lse


@triton.jit
def merge_parts(p_out, p_lse, n, o_d, m_d, D: tl.constexpr, SLOT_BLOCK: tl.constexpr):
    # Log-sum-exp merge of one row's n partials (out [D], lse base 2); returns (out [BLOCK_D], lse).
    m_i = tl.full([], float("-inf"), tl.float32)
    l_i = tl.zeros([], tl.float32)
    acc = tl.zeros(o_d.shape, tl.float32)
    o_s = tl.arange(0, SLOT_BLOCK)
    for s0 in range(0, n, SLOT_BLOCK):
        m_s = (s0 + o_s) < n
        b_lse = tl.load(p_lse + s0 + o_s, mask=m_s, other=float("-inf"))
        b_o = tl.load(
            p_out + (s0 + o_s)[:, None] * D + o_d[None, :], mask=m_s[:, None] & m_d[None, :], other=0.0
        )
        m_new = tl.maximum(m_i, tl.max(b_lse, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        w = tl.exp2(b_lse - m_safe)
        alpha = tl.exp2(m_i - m_safe)
        acc = acc * alpha + tl.sum(w[:, None] * b_o, axis=0)
        l_i = l_i * alpha + tl.sum(w, axis=0)
        m_i = m_new
    has = l_i > 0
    return acc / tl.where(has, l_i, 1.0), tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))


@triton.jit
def load_slot(lo_ptr, hi_ptr, score_ptr, p_i, mask):
    # Whether slot p_i holds a span (lo <= hi) and its search score; masked-off rows read an invalid slot.
    valid = tl.load(lo_ptr + p_i, mask=mask, other=0) <= tl.load(hi_ptr + p_i, mask=mask, other=-1)
    return valid, tl.load(score_ptr + p_i, mask=mask, other=0.0)


@triton.jit
def gate_max(lo_ptr, hi_ptr, score_ptr, base, mask, NUM_SPANS: tl.constexpr):
    # The largest search score among the valid slots base + 0 .. base + NUM_SPANS - 1 (-inf if none).
    s_max = tl.full(base.shape, float("-inf"), tl.float32)
    for i in tl.static_range(NUM_SPANS):
        valid, score = load_slot(lo_ptr, hi_ptr, score_ptr, base + i, mask)
        s_max = tl.maximum(s_max, tl.where(valid, score, float("-inf")))
    return s_max


@triton.jit
def gate_weight(valid, score, s_max):
    # A slot's unnormalized gate: exp(score - s_max) if valid, 0 if not; 1 for every slot when none is valid.
    return tl.where(s_max == float("-inf"), 1.0, tl.where(valid, tl.exp(score - s_max), 0.0))


@triton.jit
def merge_weights(lse_a, lse_b):
    # The log-sum-exp merge of two partials: weights w_a, w_b and the divisor (w_a + w_b, or 1 when both
    # are empty), so that the merge is (w_a * o_a + w_b * o_b) / den.
    top = tl.maximum(lse_a, lse_b)
    top = tl.where(top == float("-inf"), 0.0, top)
    w_a = tl.exp2(lse_a - top)
    w_b = tl.exp2(lse_b - top)
    den = tl.where(w_a + w_b > 0, w_a + w_b, 1.0)
    return w_a, w_b, den
