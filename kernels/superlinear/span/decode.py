"""Superlinear attention decode, Triton: one query per sequence, CUDA-graph capturable.

Launches (all shapes fixed by the cache capacity, the query position read on the device):

1. ``search.prefill.search_spans`` with the stripes split over many programs (one query has too little
   work for one program), merged into each head's top-k spans;
2. ``_chunk_kernel``: the key axis is cut into chunks of ``CHUNK_KEYS`` keys. A persistent grid of programs
   per (batch, KV group) enumerates the chunks that some row of the group needs (every head's window
   ``[ws, q]`` and every (head, slot) span), each chunk once, and splits them among its programs: cost
   follows the union of the spans, which grows with ``q``, never the capacity. For each chunk the
   program loads K/V once and attends all rows that meet it, so heads share each K/V read wherever their
   spans overlap. Each (row, chunk) writes a partial output and log2-sum-exp;
3. ``_combine_kernel``: per (batch, head), merges each row's partials, then the window with each span,
   and applies the gate.

No host sync, no data-dependent Python branch: the position tables are built (cached) before capture by
a first eager call with the same capacity. The prefill entry point sends single-query calls here too.

``triton_decode_rows`` runs the same three steps for B rows in one launch sequence, each row at its own
device position over its own KV buffers, reached through device tables of offsets from an anchor tensor
and of capacities (the kernels' ``ROWS`` variant; a batch of sessions in one CUDA graph).
"""

import math

import torch
import triton
import triton.language as tl

from ...common.toolkit import (
    MIN_DOT_BLOCK,
    NO_KEY,
    block_d,
    dot,
    interpreting,
    multiprocessors,
    padded_block,
    qk_scale,
)
from ...common.validation import require
from ...kv_rows import offsets as kv_offsets
from ..params import SuperlinearParams
from ..search.prefill import search_spans, supports
from ..search.rows import search_spans_rows
from ..search.tables import prefill_capacity, routing_tables
from ..softmax import gate_max, gate_weight, load_slot, merge_parts, merge_weights
from .reference import decode_reference

CHUNK_KEYS = 128
LN_2 = math.log(2.0)
SLOT_BLOCK = 64
# The name this module exported before the shared toolkit (kept importable).
_merge_parts, _multiprocessors = merge_parts, multiprocessors


@triton.jit
def _chunk_kernel(
    q2_ptr,
    k_ptr,
    v_ptr,
    pos_ptr,
    starts_ptr,
    lo_ptr,
    hi_ptr,
    part_out_ptr,
    part_lse_ptr,
    k_off_ptr,
    v_off_ptr,
    cap_ptr,
    stride_qb,
    stride_qh,
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
    W,
    NPROG,
    NMAX,
    qk_scale,
    G: tl.constexpr,
    D: tl.constexpr,
    NUM_SPANS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    F32: tl.constexpr,
    ROWS: tl.constexpr,
):
    # ROWS: row b at its own position pos[b], its K/V the contiguous [HKV, cap[b], D] at k_off[b], v_off[b]
    # elements from k_ptr, v_ptr (``triton_decode_rows``); else one position and K, V [B, HKV, L, D].
    i_p = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HKV
    i_g = i_bg % HKV
    if ROWS:
        q = tl.load(pos_ptr + i_b).to(tl.int64)
        k_row, v_row = _row_bases(k_ptr, v_ptr, k_off_ptr, v_off_ptr, cap_ptr, i_b, i_g, stride_kl, stride_vl)
    else:
        q = tl.load(pos_ptr).to(tl.int64)
        k_row, v_row = k_ptr + i_b * stride_kb + i_g * stride_kh, v_ptr + i_b * stride_vb + i_g * stride_vh
    ws = tl.maximum(q - W + 1, tl.load(starts_ptr + i_b))
    # rows: G * NUM_SPANS (head, slot) spans, then G windows (one per head)
    o_r = tl.arange(0, BLOCK_R)
    n_span_rows = G * NUM_SPANS
    is_span = o_r < n_span_rows
    is_win = (o_r >= n_span_rows) & (o_r < n_span_rows + G)
    o_h = i_g * G + tl.where(is_span, o_r // NUM_SPANS, o_r - n_span_rows)
    route = (i_b * HKV * G + o_h) * NUM_SPANS + o_r % NUM_SPANS
    lo = tl.load(lo_ptr + route, mask=is_span, other=NO_KEY).to(tl.int64)
    hi = tl.load(hi_ptr + route, mask=is_span, other=-1).to(tl.int64)
    lo = tl.where(is_win, ws, lo)
    hi = tl.where(is_win, q, hi)
    live = lo <= hi
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    p_q = q2_ptr + i_b * stride_qb + o_h[:, None] * stride_qh + o_d[None, :] * stride_qd
    b_q = tl.load(p_q, mask=live[:, None] & m_d[None, :], other=0.0)
    first = lo // BLOCK_N
    start_c, count_c, offset_c, total = _needed_chunks(first, hi // BLOCK_N, live, BLOCK_R)
    o_n = tl.arange(0, BLOCK_N)
    p_kt = k_row + o_n[:, None] * stride_kl + o_d[None, :] * stride_kd
    p_vt = v_row + o_n[:, None] * stride_vl + o_d[None, :] * stride_vd
    p_part = (i_bg * BLOCK_R + o_r) * NMAX
    # Only needed chunks, and no branch in the body, so the loads of the next chunks are pipelined.
    for i_c in range(i_p, total, NPROG):
        own = (offset_c <= i_c) & (i_c < offset_c + count_c)
        c = tl.sum(tl.where(own, start_c + (i_c - offset_c), 0), axis=0).to(tl.int64)
        c0 = c * BLOCK_N
        hit = live & (lo < c0 + BLOCK_N) & (hi >= c0)
        m_kv = ((c0 + o_n) <= q)[:, None] & m_d[None, :]
        b_k = tl.load(p_kt + c0 * stride_kl, mask=m_kv, other=0.0)
        b_s = dot(b_q, tl.trans(b_k), F32) * qk_scale
        o_key = c0 + o_n
        m_s = hit[:, None] & (o_key[None, :] >= lo[:, None]) & (o_key[None, :] <= hi[:, None])
        b_s = tl.where(m_s, b_s, float("-inf"))
        m_safe = tl.where(hit, tl.max(b_s, axis=1), 0.0)
        b_p = tl.exp2(b_s - m_safe[:, None])
        l_c = tl.where(hit, tl.sum(b_p, axis=1), 1.0)
        b_v = tl.load(p_vt + c0 * stride_vl, mask=m_kv, other=0.0)
        b_o = dot(b_p.to(b_v.dtype), b_v, F32) / l_c[:, None]
        slot = p_part + (c - first)
        tl.store(part_out_ptr + slot[:, None] * D + o_d[None, :], b_o, mask=hit[:, None] & m_d[None, :])
        tl.store(part_lse_ptr + slot, m_safe + tl.log2(l_c), mask=hit)


@triton.jit
def _row_bases(k_ptr, v_ptr, k_off_ptr, v_off_ptr, cap_ptr, i_b, i_g, stride_kl, stride_vl):
    # Row b's KV group g in its own contiguous [HKV, cap[b], D] buffers at k_off[b], v_off[b] elements.
    cap = tl.load(cap_ptr + i_b)
    k_row = k_ptr + tl.load(k_off_ptr + i_b) + i_g * cap * stride_kl
    v_row = v_ptr + tl.load(v_off_ptr + i_b) + i_g * cap * stride_vl
    return k_row, v_row


@triton.jit
def _needed_chunks(first, last, live, BLOCK_R: tl.constexpr):
    # Enumerate, once each, the chunks that some live row [first, last] needs. In the order of (first,
    # row), row r contributes [start_r, last] beyond every earlier row's reach (earlier rows start no
    # later, so they cover everything up to their largest last). Returns start_r, count_r, the offset
    # of row r's chunks in the enumeration, and the total. [BLOCK_R, BLOCK_R] work, once per program.
    o_r = tl.arange(0, BLOCK_R)
    first = tl.where(live, first, 2147483647).to(tl.int32)
    last = tl.where(live, last, -1).to(tl.int32)
    first_c = first[None, :]
    earlier = (first_c < first[:, None]) | ((first_c == first[:, None]) & (o_r[None, :] < o_r[:, None]))
    reach = tl.max(tl.where(earlier, last[None, :], -1), axis=1)
    start = tl.maximum(first, reach + 1)
    count = tl.where(live, tl.maximum(last - start + 1, 0), 0)
    offset = tl.sum(tl.where(earlier, count[None, :], 0), axis=1)
    return start, count, offset, tl.sum(count, axis=0)


@triton.jit
def _combine_kernel(
    part_out_ptr,
    part_lse_ptr,
    pos_ptr,
    starts_ptr,
    lo_ptr,
    hi_ptr,
    score_ptr,
    o_ptr,
    stride_ob,
    stride_oh,
    stride_od,
    HQ,
    HKV,
    W,
    NMAX,
    G: tl.constexpr,
    D: tl.constexpr,
    NUM_SPANS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    SLOT_BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
):
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // HQ
    i_h = i_bh % HQ
    if ROWS:  # one position per batch row
        q = tl.load(pos_ptr + i_b).to(tl.int64)
    else:
        q = tl.load(pos_ptr).to(tl.int64)
    ws = tl.maximum(q - W + 1, tl.load(starts_ptr + i_b))
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    rows = (i_b * HKV + i_h // G) * BLOCK_R
    win = rows + G * NUM_SPANS + i_h % G
    n_win = tl.where(ws <= q, q // BLOCK_N - ws // BLOCK_N + 1, 0)
    o_w, lse_w = merge_parts(
        part_out_ptr + win * NMAX * D, part_lse_ptr + win * NMAX, n_win, o_d, m_d, D, SLOT_BLOCK
    )
    m_row = i_bh >= 0
    s_max = gate_max(lo_ptr, hi_ptr, score_ptr, i_bh * NUM_SPANS, m_row, NUM_SPANS)
    total = tl.zeros([], tl.float32)
    out = tl.zeros(o_d.shape, tl.float32)
    for i in tl.static_range(NUM_SPANS):
        lo = tl.load(lo_ptr + i_bh * NUM_SPANS + i)
        hi = tl.load(hi_ptr + i_bh * NUM_SPANS + i)
        valid, score = load_slot(lo_ptr, hi_ptr, score_ptr, i_bh * NUM_SPANS + i, m_row)
        weight = gate_weight(valid, score, s_max)
        row = rows + (i_h % G) * NUM_SPANS + i
        n_i = tl.where(valid, hi // BLOCK_N - lo // BLOCK_N + 1, 0)
        o_i, lse_i = merge_parts(
            part_out_ptr + row * NMAX * D, part_lse_ptr + row * NMAX, n_i, o_d, m_d, D, SLOT_BLOCK
        )
        w_w, w_i, den = merge_weights(lse_w, lse_i)
        out += weight * (w_w * o_w + w_i * o_i) / den
        total += weight
    p_o = o_ptr + i_b * stride_ob + i_h * stride_oh + o_d * stride_od
    tl.store(p_o, (out / total).to(o_ptr.dtype.element_ty), mask=m_d)


def triton_decode(
    Q1,
    Q2,
    K,
    V,
    cache_position,
    attention_mask,
    params: SuperlinearParams,
    *,
    out=None,
    chunk_keys: int | None = None,
    programs_per_sm: int = 1,
):
    """Superlinear attention of one query per row with the Triton kernels; the reference's signature.

    Q1, Q2: [B, HQ, 1, D] fp16/bf16, D <= 128; K, V: [B, HKV, LKV, D] (the cache; LKV is the capacity);
    cache_position: [1] int on Q2's device; attention_mask: None or [B, LKV]. Arguments are assumed
    validated. Returns [B, HQ, 1, D] in Q2's dtype (written into ``out`` when given). The chunk kernel
    reads ``chunk_keys`` keys a step (64 or 128; default ``CHUNK_KEYS``) and runs ``programs_per_sm``
    persistent programs per multiprocessor (one fills an SM's shared memory with its K/V pipeline:
    three stages of 64 keys or two of 128). Unsupported inputs (see ``search.prefill.supports``) run
    the reference, which syncs with the host.
    """
    if not supports(Q2, K):
        return decode_reference(Q1, Q2, K, V, cache_position, attention_mask, params)
    chunk_keys = CHUNK_KEYS if chunk_keys is None else chunk_keys
    require(chunk_keys in (64, 128), f"chunk_keys must be 64 or 128, got {chunk_keys}")
    positions = cache_position.reshape(1).to(device=Q2.device, dtype=torch.int64)
    # Tables for the capacity rounded up to a power of two: a cache that grows step by step (a model
    # passing K[:, :, :position + 1]) rebuilds them only log-many times; a graph's fixed cache never.
    tables = routing_tables(params, prefill_capacity(K.shape[2]), Q2.device)
    # Splits of 64 stripes: one query's search spread over as many programs as the stripes allow.
    routes = search_spans(
        Q1, K, positions, attention_mask, tables, params.num_spans, splits=1 << 30, block_j=64
    )
    part_out, part_lse = _chunk_partials(Q2, K, V, positions, routes, tables, chunk_keys, programs_per_sm)
    out = torch.empty_like(Q2) if out is None else out
    _combine(part_out, part_lse, positions, routes, tables.window, out, chunk_keys)
    return out


def triton_decode_rows(
    Q1,
    Q2,
    keys,
    values,
    positions,
    params: SuperlinearParams,
    *,
    tables=None,
    anchors=None,
    capacity: int | None = None,
    out=None,
    chunk_keys: int | None = None,
    programs_per_sm: int = 1,
):
    """``triton_decode`` of B rows in one launch sequence, each row at its own position over its own cache.

    Q1, Q2: [B, HQ, 1, D]; keys, values: B buffers [1, HKV, cap_b, D] contiguous (row b's cache);
    positions: [B] int64 on Q2's device, ``positions[b] < cap_b``. ``tables`` = (k_off, v_off, caps)
    [B] int64 device tables: row b's buffers at element offsets k_off[b], v_off[b] from ``anchors`` (two
    tensors of the buffers' dtype; default ``keys[0]``, ``values[0]``) with caps[b] keys per head
    (``kernels.kv_rows.offsets``); built here when None. ``capacity`` (default the largest cap_b) sizes
    the position tables and partial buffers: every position must stay below it. Row b's output is
    ``triton_decode`` of row b alone (same spans, same partials, same merge); nothing syncs with the host
    given ``tables``, so a caller that updates the tables and positions in place can replay one CUDA
    graph for any rows. Unsupported inputs run ``triton_decode`` row by row (its reference).
    """
    out = torch.empty_like(Q2) if out is None else out
    if not supports(Q2, keys[0]):
        for b in range(len(keys)):
            where = positions[b : b + 1]
            out[b : b + 1] = triton_decode(
                Q1[b : b + 1], Q2[b : b + 1], keys[b], values[b], where, None, params
            )
        return out
    chunk_keys = CHUNK_KEYS if chunk_keys is None else chunk_keys
    require(chunk_keys in (64, 128), f"chunk_keys must be 64 or 128, got {chunk_keys}")
    if tables is None:
        tables = _row_tables(keys, values, anchors)
    k_base, v_base = anchors if anchors is not None else (keys[0], values[0])
    capacity = max(k.shape[2] for k in keys) if capacity is None else capacity
    # The routes of a position depend on the tables only through t = q + 1 <= capacity, so one table for
    # the largest capacity serves every row (and the stripes split in 64s as the single-row search does).
    routing = routing_tables(params, prefill_capacity(capacity), Q2.device)
    positions = positions.reshape(-1).to(torch.int64).contiguous()
    routes = search_spans_rows(Q1, k_base, tables[0], tables[2], positions, routing, params.num_spans)
    part_out, part_lse = _chunk_partials(
        Q2, k_base, v_base, positions, routes, routing, chunk_keys, programs_per_sm, rows=tables
    )
    _combine(part_out, part_lse, positions, routes, routing.window, out, chunk_keys, rows=True)
    return out


def _row_tables(keys, values, anchors):
    """(k_off, v_off, caps) of the rows' buffers, offsets counted from ``anchors`` (default row 0's)."""
    k_base, v_base = anchors if anchors is not None else (keys[0], values[0])
    k_off = kv_offsets(keys, base=k_base)
    v_off = kv_offsets(values, base=v_base)
    caps = torch.tensor([k.shape[2] for k in keys], dtype=torch.int64, device=k_off.device)
    return k_off, v_off, caps


def _chunk_partials(Q2, K, V, positions, routes, tables, chunk_keys: int, programs_per_sm: int, rows=None):
    """Run the chunk kernel; returns partial outputs [B * HKV, R, NMAX, D] fp32 and their log2-sum-exp
    [B * HKV, R, NMAX] for R rows (G * K spans, then G windows, padded) and NMAX chunks per row. With
    ``rows`` = (k_off, v_off, caps) K and V are the anchors of the rows' separate contiguous buffers."""
    batch, q_heads, _, dim = Q2.shape
    kv_heads, num_spans = K.shape[1], routes.lo.shape[-1]
    group = q_heads // kv_heads
    block_r = padded_block(group * (num_spans + 1), MIN_DOT_BLOCK)
    n_max = triton.cdiv(tables.longest, chunk_keys) + 1
    part_out = torch.empty(batch * kv_heads, block_r, n_max, dim, dtype=torch.float32, device=Q2.device)
    part_lse = torch.empty(batch * kv_heads, block_r, n_max, dtype=torch.float32, device=Q2.device)
    n_prog = max(1, programs_per_sm * multiprocessors(Q2.device) // (batch * kv_heads))
    # fmt: off
    _chunk_kernel[(n_prog, batch * kv_heads)](
        Q2, K, V, positions, routes.starts, routes.lo, routes.hi, part_out, part_lse,
        *(rows if rows is not None else (positions,) * 3),
        Q2.stride(0), Q2.stride(1), Q2.stride(3),
        *(K.stride() if rows is None else (0, 0, dim, 1)), *(V.stride() if rows is None else (0, 0, dim, 1)),
        kv_heads, tables.window, n_prog, n_max, qk_scale(dim),
        G=group, D=dim, NUM_SPANS=num_spans, BLOCK_R=block_r, BLOCK_N=chunk_keys,
        BLOCK_D=block_d(dim), F32=interpreting(), ROWS=rows is not None,
        num_warps=8, num_stages=3 if chunk_keys == 64 else 2,
    )
    # fmt: on
    return part_out, part_lse


def _combine(
    part_out, part_lse, positions, routes, window: int, out, chunk_keys: int, rows: bool = False
) -> None:
    """Merge each row's partials, then window with spans, gate, and write ``out`` [B, HQ, 1, D]
    (``rows``: ``positions`` [B], one per row)."""
    batch, q_heads, _, dim = out.shape
    kv_heads = part_out.shape[0] // batch
    # fmt: off
    _combine_kernel[(batch * q_heads,)](
        part_out, part_lse, positions, routes.starts, routes.lo, routes.hi, routes.scores, out,
        out.stride(0), out.stride(1), out.stride(3),
        q_heads, kv_heads, window, part_out.shape[2],
        G=q_heads // kv_heads, D=dim, NUM_SPANS=routes.lo.shape[-1], BLOCK_R=part_out.shape[1],
        BLOCK_N=chunk_keys, BLOCK_D=block_d(dim), SLOT_BLOCK=SLOT_BLOCK, ROWS=rows,
        num_warps=4,
    )
    # fmt: on


@triton.jit
def _rows_kernel(
    part_out_ptr,
    part_lse_ptr,
    lo_ptr,
    hi_ptr,
    out_ptr,
    lse_ptr,
    HQ,
    HKV,
    NMAX,
    G: tl.constexpr,
    D: tl.constexpr,
    NUM_SPANS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    SLOT_BLOCK: tl.constexpr,
):
    # One program per (batch, head, interval): merge the interval's chunk partials, no gate; write the
    # normalized output and its log2-sum-exp (-inf for an empty interval).
    i_row = tl.program_id(0).to(tl.int64)
    i_bh = i_row // NUM_SPANS
    i_b = i_bh // HQ
    i_h = i_bh % HQ
    lo = tl.load(lo_ptr + i_row).to(tl.int64)
    hi = tl.load(hi_ptr + i_row).to(tl.int64)
    n = tl.where(lo <= hi, hi // BLOCK_N - lo // BLOCK_N + 1, 0)
    row = (i_b * HKV + i_h // G) * BLOCK_R + (i_h % G) * NUM_SPANS + i_row % NUM_SPANS
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    out, lse = merge_parts(
        part_out_ptr + row * NMAX * D, part_lse_ptr + row * NMAX, n, o_d, m_d, D, SLOT_BLOCK
    )
    tl.store(out_ptr + i_row * D + o_d, out, mask=m_d)
    tl.store(lse_ptr + i_row, lse)


def interval_partials(
    Q2,
    K,
    V,
    lo,
    hi,
    *,
    chunk_keys: int | None = None,
    programs_per_sm: int = 1,
    max_chunks: int | None = None,
):
    """Attention of one query per row over explicit key intervals, unnormalised across intervals.

    Q2: [B, HQ, 1, D] fp16/bf16 (D <= 128); K, V: [B, HKV, L, D], L > 0, same dtype (batch stride may be 0);
    lo, hi: [B, HQ, I] inclusive key indices in ``[0, L)`` (``lo > hi``: empty). Returns out [B, HQ, I, D]
    fp32 (0 for an empty interval) and lse [B, HQ, I] fp32, the natural log-sum-exp of the interval's
    scores ``q . k / sqrt(D)`` (-inf when empty), so partials over disjoint key sets (other ranks' keys)
    merge by log-sum-exp. The chunk kernel of ``triton_decode`` computes the partials, each interval a
    span row (the kernel's own window rows are kept empty). The partial buffer holds ``max_chunks``
    chunks per interval (at least ``hi // chunk_keys - lo // chunk_keys + 1`` of every non-empty one); by
    default it is read from lo, hi, one sync with the host.
    """
    chunk_keys = CHUNK_KEYS if chunk_keys is None else chunk_keys
    require(chunk_keys in (64, 128), f"chunk_keys must be 64 or 128, got {chunk_keys}")
    batch, q_heads, _, dim = Q2.shape
    kv_heads, length, intervals = K.shape[1], K.shape[2], lo.shape[-1]
    lo = lo.to(torch.int32).contiguous()
    hi = hi.to(torch.int32).contiguous()
    out = torch.zeros(batch, q_heads, intervals, dim, dtype=torch.float32, device=Q2.device)
    lse = torch.full((batch, q_heads, intervals), float("-inf"), dtype=torch.float32, device=Q2.device)
    if max_chunks is None:
        chunks = torch.where(hi >= lo, hi // chunk_keys - lo // chunk_keys + 1, 0)
        max_chunks = int(chunks.max()) if chunks.numel() else 0
    n_max = max_chunks
    if n_max == 0:
        return out, lse
    group = q_heads // kv_heads
    block_r = padded_block(group * intervals, MIN_DOT_BLOCK)
    part_out = torch.empty(batch * kv_heads, block_r, n_max, dim, dtype=torch.float32, device=Q2.device)
    part_lse = torch.empty(batch * kv_heads, block_r, n_max, dtype=torch.float32, device=Q2.device)
    n_prog = max(1, programs_per_sm * multiprocessors(Q2.device) // (batch * kv_heads))
    # The kernel bounds keys by its "query position" (the last key) and builds each head's window row as
    # [max(q - W + 1, start), q]: W = 1 and start = L keep every window row empty.
    last = torch.full((1,), length - 1, dtype=torch.int64, device=Q2.device)
    starts = torch.full((batch,), length, dtype=torch.int64, device=Q2.device)
    # fmt: off
    _chunk_kernel[(n_prog, batch * kv_heads)](
        Q2, K, V, last, starts, lo, hi, part_out, part_lse, last, last, last,
        Q2.stride(0), Q2.stride(1), Q2.stride(3), *K.stride(), *V.stride(),
        kv_heads, 1, n_prog, n_max, qk_scale(dim),
        G=group, D=dim, NUM_SPANS=intervals, BLOCK_R=block_r, BLOCK_N=chunk_keys,
        BLOCK_D=block_d(dim), F32=interpreting(), ROWS=False,
        num_warps=8, num_stages=3 if chunk_keys == 64 else 2,
    )
    _rows_kernel[(batch * q_heads * intervals,)](
        part_out, part_lse, lo, hi, out, lse, q_heads, kv_heads, n_max,
        G=group, D=dim, NUM_SPANS=intervals, BLOCK_R=block_r, BLOCK_N=chunk_keys,
        BLOCK_D=block_d(dim), SLOT_BLOCK=SLOT_BLOCK, num_warps=4,
    )
    # fmt: on
    return out, lse * LN_2
