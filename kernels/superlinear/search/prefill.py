"""Span search, Triton: stripe-anchor scores, top-k and span bounds (docs/attention.md steps 1-5).

Two kernels. ``_search_kernel`` runs one program per (query, batch x KV group, split of the stripes): it
gathers the anchor keys ``K[q + 1 - P(j)]`` of a tile of stripes, scores all query heads of the group at
once with one tensor-core ``tl.dot`` (the heads share the gathered keys), and keeps a running top-(k+1)
per head (KP, a power of two, candidates). A candidate is packed into one int64 key, the fp32 score's
order-preserving bits above ``2**31 - 1 - a``, so a single max picks the highest score and, among equal
scores, the smaller position: the reference's tie rule. At the end the kept candidates are rescored as
float64 sums of the exact fp16/bf16 products rounded once to fp32, which is how the reference scores, so
the selected slots and the gate's scores equal the reference's (the fp32 tensor-core ranking can only
misplace near-ties, which the extra candidate and the exact rescoring settle). ``_select_kernel`` merges
the splits' candidates (decode splits the stripes over many programs; prefill uses one split), picks the
top k, decodes score and anchor and computes the span bounds from the host-built tables of
``search.tables``. With ``ROWS`` the search kernel takes one query per batch row, each at its own position
over its own KV buffer (``search.rows``).
"""

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ...common.toolkit import MIN_DOT_BLOCK, block_d, dot, interpreting, padded_block
from ...common.validation import require
from .tables import RoutingTables

BLOCK_J = 128
MAX_SPLITS = 128
MAX_TRITON_HEAD_DIM = 128
TRITON_DTYPES = (torch.float16, torch.bfloat16)
# Below every key a finite (or infinite) score can produce; marks "no candidate".
SENTINEL = tl.constexpr(-9200000000000000000)
POS_MAX = 2**31 - 1
# The names this module exported before the shared toolkit (kept importable).
_dot = dot


def supports(Q2: torch.Tensor, K: torch.Tensor) -> bool:
    """Return whether the Triton kernels take these tensors: on CUDA (or the interpreter), fp16/bf16,
    head dim <= 128, fewer than 2**31 keys. The entry points run the reference for anything else."""
    on_device = Q2.is_cuda or interpreting()
    small = Q2.shape[-1] <= MAX_TRITON_HEAD_DIM and K.shape[2] < POS_MAX
    return on_device and small and Q2.dtype in TRITON_DTYPES and K.dtype == Q2.dtype


@dataclass(frozen=True)
class SpanRoutes:
    """The selected spans of every (batch, query head, query, slot), best slot first.

    lo, hi: [B, HQ, LQ, K] int32 inclusive key positions (``lo > hi``: invalid slot, ``lo`` = LKV);
    scores: [B, HQ, LQ, K] fp32 search scores (0 for an invalid slot); starts: [B] int64 first valid key;
    anchors: [B, HQ, LQ, K] int32 selected anchor positions (-1 for an invalid slot; the backward pass
    sends the gate's gradient to ``K`` there), or None where not recorded.
    """

    lo: torch.Tensor
    hi: torch.Tensor
    scores: torch.Tensor
    starts: torch.Tensor
    anchors: torch.Tensor | None = None


@triton.jit
def _pack(score, position):
    # Order-preserving int32 image of the fp32 score in the high half; -0.0 is folded onto +0.0 first.
    score = tl.where(score == 0.0, 0.0, score)
    bits = score.to(tl.int32, bitcast=True)
    ordered = tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    return (ordered.to(tl.int64) << 32) | (2147483647 - position)


@triton.jit
def _unpack(key):
    ordered = (key >> 32).to(tl.int32)
    bits = tl.where(ordered >= 0, ordered, ordered ^ 0x7FFFFFFF)
    low = key - ((key >> 32) << 32)
    return bits.to(tl.float32, bitcast=True), 2147483647 - low


@triton.jit
def _search_kernel(
    q1_ptr,
    k_ptr,
    mask_ptr,
    starts_ptr,
    pos_ptr,
    count_ptr,
    stripes_ptr,
    keys_ptr,
    k_off_ptr,
    cap_ptr,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    stride_mb,
    stride_ml,
    HKV,
    LQ,
    SPLIT_LEN,
    G: tl.constexpr,
    D: tl.constexpr,
    SPLITS: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_J: tl.constexpr,
    KP: tl.constexpr,
    HAS_MASK: tl.constexpr,
    F32: tl.constexpr,
    ROWS: tl.constexpr,
):
    # ROWS: one query per batch row at its own position, row b's keys at k_ptr + k_off[b] with cap[b]
    # keys per head (rows in separate buffers, ``search_spans_rows``); else LQ queries over one K.
    i_q = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_s = tl.program_id(2).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    if ROWS:
        q = tl.load(pos_ptr + i_b).to(tl.int64)
        n_j = tl.load(count_ptr + i_b)
        p_kbase = k_ptr + tl.load(k_off_ptr + i_b) + i_g * tl.load(cap_ptr + i_b) * stride_kl
    else:
        q = tl.load(pos_ptr + i_q).to(tl.int64)
        n_j = tl.load(count_ptr + i_q)
        p_kbase = k_ptr + i_b * stride_kb + i_g * stride_kh
    start = tl.load(starts_ptr + i_b)
    o_g = tl.arange(0, BLOCK_G)
    o_d = tl.arange(0, BLOCK_D)
    m_g = o_g < G
    m_d = o_d < D
    o_h = i_g * G + o_g
    p_q = q1_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + i_q * stride_ql + o_d[None, :] * stride_qd
    b_q = tl.load(p_q, mask=m_g[:, None] & m_d[None, :], other=0.0)
    o_k = tl.arange(0, KP)
    best = tl.full([BLOCK_G, KP], SENTINEL, tl.int64)
    j_begin = i_s * SPLIT_LEN
    j_end = tl.minimum(j_begin + SPLIT_LEN, n_j)
    for j0 in range(j_begin, j_end, BLOCK_J):
        o_j = j0 + tl.arange(0, BLOCK_J)
        m_j = o_j < j_end
        a = q + 1 - tl.load(stripes_ptr + o_j, mask=m_j, other=0)
        m_a = m_j & (a >= start)
        if HAS_MASK:
            m_a &= tl.load(mask_ptr + i_b * stride_mb + a * stride_ml, mask=m_a, other=0) != 0
        p_k = p_kbase + a[:, None] * stride_kl + o_d[None, :] * stride_kd
        b_k = tl.load(p_k, mask=m_a[:, None] & m_d[None, :], other=0.0)
        b_s = dot(b_q, tl.trans(b_k), F32)
        cand = tl.where(m_a[None, :], _pack(b_s, a[None, :]), SENTINEL)
        # Merge the tile into the running top-KP: KP rounds of "take the largest key of either".
        merged = tl.full([BLOCK_G, KP], SENTINEL, tl.int64)
        for i in tl.static_range(KP):
            top = tl.maximum(tl.max(cand, axis=1), tl.max(best, axis=1))
            merged = tl.where(o_k[None, :] == i, top[:, None], merged)
            cand = tl.where(cand == top[:, None], SENTINEL, cand)
            best = tl.where(best == top[:, None], SENTINEL, best)
        best = merged
    p_qrow = q1_ptr + i_b * stride_qb + o_h * stride_qh + i_q * stride_ql
    best = _rescore(best, p_qrow, p_kbase, stride_qd, stride_kl, stride_kd, m_g, D, BLOCK_G, KP, BLOCK_D, 32)
    # keys: [B, HQ, LQ, SPLITS, KP]
    row = ((i_b * HKV + i_g) * G + o_g) * LQ + i_q
    p_out = keys_ptr + (row[:, None] * SPLITS + i_s) * KP + o_k[None, :]
    tl.store(p_out, best, mask=m_g[:, None])


@triton.jit
def _rescore(
    best,
    p_q,
    p_kbase,
    stride_qd,
    stride_kl,
    stride_kd,
    m_g,
    D: tl.constexpr,
    BLOCK_G: tl.constexpr,
    KP: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CHUNK_D: tl.constexpr,
):
    # Recompute the kept candidates' scores as float64 sums of the exact fp16/bf16 products, rounded
    # once to fp32, as the reference does. The tensor-core fp32 ranking is only off for near-ties, and
    # keeping one candidate more than k lets the exact scores settle those. p_q: [BLOCK_G] row pointers.
    valid = best != SENTINEL
    _, a = _unpack(best)
    exact = tl.zeros([BLOCK_G, KP], tl.float64)
    for d0 in tl.static_range(0, BLOCK_D, CHUNK_D):
        o_d = d0 + tl.arange(0, CHUNK_D)
        m_d = o_d < D
        b_q = tl.load(p_q[:, None] + o_d[None, :] * stride_qd, mask=m_g[:, None] & m_d[None, :], other=0.0)
        p_k = p_kbase + a[:, :, None] * stride_kl + o_d[None, None, :] * stride_kd
        b_k = tl.load(p_k, mask=valid[:, :, None] & m_d[None, None, :], other=0.0)
        # Through fp32 (exact for fp16/bf16), which the interpreter also converts correctly.
        q64 = b_q.to(tl.float32).to(tl.float64)
        exact += tl.sum(q64[:, None, :] * b_k.to(tl.float32).to(tl.float64), axis=2)
    return tl.where(valid, _pack(exact.to(tl.float32), a), SENTINEL)


@triton.jit
def _select_kernel(
    keys_ptr,
    pos_ptr,
    starts_ptr,
    back_ptr,
    fwd_ptr,
    lo_ptr,
    hi_ptr,
    score_ptr,
    anchor_ptr,
    n_rows,
    HQ,
    LQ,
    W,
    CAPACITY,
    KV_LEN,
    NUM_SPANS: tl.constexpr,
    N_CAND: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    o_r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    m_r = o_r < n_rows
    o_c = tl.arange(0, BLOCK_C)
    p_c = keys_ptr + o_r[:, None] * N_CAND + o_c[None, :]
    cand = tl.load(p_c, mask=m_r[:, None] & (o_c[None, :] < N_CAND), other=SENTINEL)
    q = tl.load(pos_ptr + o_r % LQ, mask=m_r, other=0).to(tl.int64)
    start = tl.load(starts_ptr + o_r // (HQ * LQ), mask=m_r, other=0)
    t = tl.minimum(tl.maximum(q + 1 - start, 0), CAPACITY)
    back = tl.load(back_ptr + t, mask=m_r, other=0).to(tl.int64)
    fwd = tl.load(fwd_ptr + t, mask=m_r, other=0).to(tl.int64)
    ws = tl.maximum(q - W + 1, start)
    for i in tl.static_range(NUM_SPANS):
        top = tl.max(cand, axis=1)
        cand = tl.where(cand == top[:, None], SENTINEL, cand)
        valid = top != SENTINEL
        score, a = _unpack(top)
        lo = tl.maximum(a - back, start)
        hi = tl.minimum(tl.minimum(a + fwd, q), ws - 1)
        p_i = o_r * NUM_SPANS + i
        tl.store(lo_ptr + p_i, tl.where(valid, lo, KV_LEN).to(tl.int32), mask=m_r)
        tl.store(hi_ptr + p_i, tl.where(valid, hi, -1).to(tl.int32), mask=m_r)
        tl.store(score_ptr + p_i, tl.where(valid, score, 0.0), mask=m_r)
        tl.store(anchor_ptr + p_i, tl.where(valid, a, -1).to(tl.int32), mask=m_r)


def sequence_starts(attention_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """Return ``start`` [B] int64 (first valid key, ``length`` for a row with none) without a host sync."""
    if attention_mask is None:
        return torch.zeros(batch, dtype=torch.int64, device=device)
    valid = attention_mask != 0
    first = valid.to(torch.int64).argmax(dim=1)
    return torch.where(valid.any(dim=1), first, length)


def search_spans(
    Q1,
    K,
    positions,
    attention_mask,
    tables: RoutingTables,
    num_spans: int,
    splits: int = 1,
    *,
    block_j: int = BLOCK_J,
    num_stages: int = 2,
):
    """Select each query head's ``num_spans`` spans (steps 1-5); returns ``SpanRoutes``.

    Q1: [B, HQ, LQ, D] fp16/bf16; K: [B, HKV, LKV, D]; positions: [LQ] int64 on Q1's device (each
    < ``tables.capacity``); attention_mask: None or [B, LKV]. ``splits`` spreads each query's stripes over
    that many programs (decode has one query, so it needs them for parallelism); ``block_j`` stripes are
    scored per step, with ``num_stages`` gathers in flight.
    """
    batch, q_heads, q_len, dim = Q1.shape
    kv_heads, kv_len = K.shape[1], K.shape[2]
    require(K.dtype == Q1.dtype and K.shape[3] == dim, "K must match Q1's dtype and head dim")
    require(kv_len < POS_MAX, f"K: at most {POS_MAX} keys are supported, got {kv_len}")
    group = q_heads // kv_heads
    n_stripes = tables.stripes.numel()
    splits = max(1, min(splits, MAX_SPLITS, triton.cdiv(n_stripes, block_j)))
    split_len = triton.cdiv(triton.cdiv(max(n_stripes, 1), splits), block_j) * block_j
    starts = sequence_starts(attention_mask, batch, kv_len, Q1.device)
    counts = torch.searchsorted(tables.stripes, positions + 1, right=True)
    track = padded_block(num_spans + 1)
    keys = torch.empty(batch, q_heads, q_len, splits, track, dtype=torch.int64, device=Q1.device)
    mask = attention_mask if attention_mask is not None else starts
    stride_mask = attention_mask.stride() if attention_mask is not None else (0, 0)
    # fmt: off
    _search_kernel[(q_len, batch * kv_heads, splits)](
        Q1, K, mask, starts, positions, counts, tables.stripes, keys, starts, starts,
        *Q1.stride(), *K.stride(), *stride_mask,
        kv_heads, q_len, split_len,
        G=group, D=dim, SPLITS=splits, BLOCK_G=padded_block(group, MIN_DOT_BLOCK),
        BLOCK_D=block_d(dim), BLOCK_J=block_j, KP=track,
        HAS_MASK=attention_mask is not None, F32=interpreting(), ROWS=False, num_warps=4,
        num_stages=num_stages,
    )
    # fmt: on
    return _select(keys, positions, starts, tables, kv_len, num_spans)


def _select(keys, positions, starts, tables: RoutingTables, kv_len: int, num_spans: int) -> SpanRoutes:
    """Merge each row's split candidates into its top-k and compute the span bounds."""
    batch, q_heads, q_len, splits, track = keys.shape
    shape = (batch, q_heads, q_len, num_spans)
    lo = torch.empty(shape, dtype=torch.int32, device=keys.device)
    hi = torch.empty_like(lo)
    scores = torch.empty(shape, dtype=torch.float32, device=keys.device)
    anchors = torch.empty_like(lo)
    n_rows, block_c = batch * q_heads * q_len, triton.next_power_of_2(splits * track)
    # The kernel reads positions[i] at pos_ptr + i: an expanded view (stride 0, as one decode row's per-head
    # positions reshape to) would be read past its one element.
    positions = positions.contiguous()
    # About 2048 candidates per program: enough rows to fill it, few enough to stay in registers.
    block_r = min(128, max(1, 2048 // block_c))
    # fmt: off
    _select_kernel[(triton.cdiv(n_rows, block_r),)](
        keys, positions, starts, tables.back, tables.forward, lo, hi, scores, anchors,
        n_rows, q_heads, q_len, tables.window, tables.capacity, kv_len,
        NUM_SPANS=num_spans, N_CAND=splits * track, BLOCK_C=block_c, BLOCK_R=block_r, num_warps=4,
    )
    # fmt: on
    return SpanRoutes(lo, hi, scores, starts, anchors)
