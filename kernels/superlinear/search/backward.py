"""Backward of the span search's scores, Triton: the gate's gradient reaches Q1 and K at the anchors.

The search score of a selected slot is ``s_i = Q1[q] . K[a_i]`` (unscaled, docs/attention.md step 3). The
top-k choice is discrete and gets no gradient (docs/attention-backward.md), so given ``ds_i`` (the
gradient of the loss in each selected score, from the gate's softmax):

    dQ1[q] = sum_i ds_i K[a_i]          dK[a_i] += ds_i Q1[q]   (over every head of the KV group)

One program per ``BLOCK_R`` (batch, head, query) rows; the K rows at the anchors are gathered, and the
scatter into dK uses fp32 atomics (many queries may pick the same anchor).
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _score_backward_kernel(
    q1_ptr, k_ptr, anchor_ptr, ds_ptr, dq1_ptr, dk_ptr,
    stride_qb, stride_qh, stride_ql, stride_qd,
    stride_kb, stride_kh, stride_kl, stride_kd,
    N_ROWS, HQ, LQ, HKV, LKV,
    G: tl.constexpr, D: tl.constexpr, NUM_SPANS: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    o_r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    m_r = o_r < N_ROWS
    i_b = o_r // (HQ * LQ)
    i_h = (o_r // LQ) % HQ
    i_q = o_r % LQ
    i_g = i_h // G
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    p_q = q1_ptr + i_b[:, None] * stride_qb + i_h[:, None] * stride_qh + i_q[:, None] * stride_ql
    b_q = tl.load(p_q + o_d[None, :] * stride_qd, mask=m_r[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    d_q = tl.zeros([BLOCK_R, BLOCK_D], tl.float32)
    for i in tl.static_range(NUM_SPANS):
        a = tl.load(anchor_ptr + o_r * NUM_SPANS + i, mask=m_r, other=-1).to(tl.int64)
        ds = tl.load(ds_ptr + o_r * NUM_SPANS + i, mask=m_r, other=0.0)
        m_a = (a >= 0)[:, None] & m_d[None, :]
        p_k = k_ptr + i_b[:, None] * stride_kb + i_g[:, None] * stride_kh + a[:, None] * stride_kl
        b_k = tl.load(p_k + o_d[None, :] * stride_kd, mask=m_a, other=0.0).to(tl.float32)
        d_q += ds[:, None] * b_k
        # dk: [B, HKV, LKV, D] fp32, contiguous
        p_dk = dk_ptr + ((i_b * HKV + i_g) * LKV + a)[:, None] * D + o_d[None, :]
        tl.atomic_add(p_dk, ds[:, None] * b_q, mask=m_a, sem="relaxed")
    tl.store(dq1_ptr + o_r[:, None] * D + o_d[None, :], d_q, mask=m_r[:, None] & m_d[None, :])


def score_backward(Q1, K, anchors, d_scores, dk=None, block_r: int = 64):
    """Send the selected scores' gradient to Q1 and K; returns fp32 (dQ1, dK).

    Q1: [B, HQ, LQ, D]; K: [B, HKV, LKV, D]; anchors: [B, HQ, LQ, S] int (-1: invalid slot, no gradient);
    d_scores: [B, HQ, LQ, S] fp32. ``dk`` (fp32 [B, HKV, LKV, D], contiguous) is accumulated into when
    given, else a zero buffer is made.
    """
    batch, q_heads, q_len, dim = Q1.shape
    kv_heads, kv_len = K.shape[1], K.shape[2]
    if dk is None:
        dk = torch.zeros(K.shape, dtype=torch.float32, device=K.device)
    dq1 = torch.empty(Q1.shape, dtype=torch.float32, device=Q1.device)
    n_rows = batch * q_heads * q_len
    _score_backward_kernel[(triton.cdiv(n_rows, block_r),)](
        Q1, K, anchors.contiguous(), d_scores.float().contiguous(), dq1, dk,
        *Q1.stride(), *K.stride(), n_rows, q_heads, q_len, kv_heads, kv_len,
        G=q_heads // kv_heads, D=dim, NUM_SPANS=anchors.shape[-1], BLOCK_R=block_r,
        BLOCK_D=max(16, triton.next_power_of_2(dim)), num_warps=4,
    )  # fmt: skip
    return dq1, dk
