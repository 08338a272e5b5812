"""Context-parallel Superlinear attention: keys sharded by position over ranks, single-device results.

Every rank holds all queries (replicated) and its own keys (``layout.PositionShards``). For each block
of queries (docs/attention.md steps 1-7):

1. each rank scores the stripe anchors it holds and keeps its own top-k (ties to the smaller position);
2. the candidates of all ranks are gathered and merged into the global top-k, ordered by score and then
   by position, exactly as the single-device ``select_top_k`` orders them;
3. window and spans follow from the selected anchors in global positions, the same on every rank;
4. each rank attends over its part of the window and of each span, one contiguous local interval each,
   giving a partial (out, lse) per interval;
5. the partials of all ranks are gathered and merged by log-sum-exp in rank order; window and spans then
   merge and gate as in the reference.

Every rank ends with the same output, bit for bit. Inference only: scores from other ranks carry no
gradient. Keys start at position 0 (no attention mask / left padding).
"""

import math

import torch

from ...common.validation import require
from ..params import SuperlinearParams
from ..search.reference import (
    all_stripe_offsets,
    candidate_anchors,
    search_scores,
    select_top_k,
    span_bounds,
    window_start,
)
from ..span.reference import TiledKV, gate, interval_attention, merge_by_lse
from .collectives import all_gather_stacked
from .device import DeviceKV, device_interval_attention, keys_for
from .layout import PositionShards

DEFAULT_BLOCK_Q = 256
NEG_INF = float("-inf")


def context_parallel_attention(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    *,
    params: SuperlinearParams,
    shards: PositionShards,
    group=None,
    block_q: int | None = None,
) -> torch.Tensor:
    """Compute Superlinear attention with this rank's keys; every rank of ``group`` must call it alike.

    Q1 (search), Q2 (attention): [B, HQ, LQ, D], the same on every rank; K, V: [B, HKV, LKV_local, D], this
    rank's keys in position order (at least ``shards.count_below(max position + 1)`` of them);
    cache_position: [LQ] absolute query positions (on the host: no device sync). Returns [B, HQ, LQ, D] in
    Q2's dtype, equal on all ranks.
    """
    batch, q_heads, q_len, dim = Q2.shape
    require(Q1.shape == Q2.shape, f"Q1: shape {tuple(Q1.shape)} differs from Q2's {tuple(Q2.shape)}")
    require(
        K.shape == V.shape and K.shape[0] == batch, f"K, V: bad shapes {tuple(K.shape)}, {tuple(V.shape)}"
    )
    require(q_heads % K.shape[1] == 0, f"Q2: {q_heads} heads are not a multiple of {K.shape[1]} KV heads")
    require(
        cache_position.numel() == q_len, f"cache_position: {cache_position.numel()} positions, LQ={q_len}"
    )
    if q_len == 0:
        return Q2.new_empty(batch, q_heads, 0, dim)
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    # Read on the host without a device sync when the caller passes CPU positions.
    last = int(cache_position.max())
    local_len = shards.count_below(last + 1)
    require(K.shape[2] >= local_len, f"K: {K.shape[2]} local keys, the queries need {local_len}")
    K, V = K[:, :, :local_len], V[:, :, :local_len]
    # Triton on CUDA; else a few queries (decode) gather just the tiles they read.
    kv = keys_for(Q2, K, V)
    offsets = all_stripe_offsets(params, last)
    block = block_q or DEFAULT_BLOCK_Q
    outputs = []
    for i in range(0, q_len, block):
        q1, q2, rows = Q1[:, :, i : i + block], Q2[:, :, i : i + block], positions[i : i + block]
        outputs.append(_attend_block(q1, q2, rows, K, kv, offsets, params, shards, group))
    return torch.cat(outputs, dim=2).to(Q2.dtype)


def _attend_block(Q1, Q2, positions, keys, kv: TiledKV, offsets, params, shards, group) -> torch.Tensor:
    """One block of queries: merged top-k, local partials, merge across ranks, gate. [B, HQ, BLK, D]."""
    starts = torch.zeros(Q2.shape[0], dtype=torch.int64, device=Q2.device)
    anchors, scores = local_top_k(Q1, keys, positions, starts, offsets, params, shards)
    anchors, scores = merge_top_k(anchors, scores, params.num_spans, group)
    valid = anchors >= 0
    ws = window_start(positions, starts, params.window)
    lo, hi = span_bounds(anchors, valid, positions, starts, ws, params)
    out, lse = local_partials(Q2, kv, shards, ws, positions, lo, hi)
    out, lse = merge_partials(out, lse, group)
    slot_out = merge_by_lse(out[..., :1, :], lse[..., :1], out[..., 1:, :], lse[..., 1:])
    return gate(slot_out, scores, valid)


def local_top_k(Q1, keys, positions, starts, offsets, params: SuperlinearParams, shards: PositionShards):
    """Score the candidate anchors this rank holds and keep its best ``num_spans``.

    Q1 [B, HQ, BLK, D]; keys: this rank's K [B, HKV, L_local, D]; positions [BLK]; starts [B].
    Returns anchors [B, HQ, BLK, K] (global positions, best first, -1 for a missing slot) and their
    scores [B, HQ, BLK, K] (-inf for a missing slot).
    """
    anchors, valid = candidate_anchors(positions, starts, None, offsets, params.num_spans)
    owned = (anchors >= 0) & shards.owns(anchors.clamp_min(0))
    # Move each query's own anchors to the front, keeping position order, and drop the columns no query
    # of the block needs: a rank scores about 1/world of the anchors.
    order = torch.sort((~owned).to(torch.int8), dim=1, stable=True).indices
    width = min(anchors.shape[1], max(int(owned.sum(dim=1).max()), params.num_spans))
    columns = order[:, :width]
    anchors, owned = anchors.gather(1, columns), owned.gather(1, columns)
    valid = valid.gather(2, columns.expand(valid.shape[0], -1, -1)) & owned
    batch, q_heads, block, _ = Q1.shape
    if keys.shape[2] == 0:
        scores = Q1.new_zeros(batch, q_heads, block, width, dtype=torch.float32)
    else:
        scores = search_scores(Q1, keys, shards.count_below(anchors).clamp(0, keys.shape[2] - 1))
    picked, slot_valid = select_top_k(scores, valid, params.num_spans)
    chosen = anchors.expand(batch, q_heads, block, width).gather(-1, picked)
    chosen_scores = scores.gather(-1, picked).masked_fill(~slot_valid, NEG_INF)
    return torch.where(slot_valid, chosen, -1), chosen_scores


def merge_top_k(anchors: torch.Tensor, scores: torch.Tensor, num_spans: int, group=None):
    """Merge every rank's ``local_top_k`` into the global top-k of the single-device search.

    Highest score first; among equal scores the smaller position first (the single-device order, whose
    columns run in position order under a stable sort). Returns anchors, scores [B, HQ, BLK, K].
    """
    anchors = all_gather_stacked(anchors, group).movedim(0, -2).flatten(-2)  # [B, HQ, BLK, W * K]
    scores = all_gather_stacked(scores, group).movedim(0, -2).flatten(-2)
    by_position = torch.sort(anchors, dim=-1, stable=True).indices
    anchors, scores = anchors.gather(-1, by_position), scores.gather(-1, by_position)
    best = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :num_spans]
    return anchors.gather(-1, best), scores.gather(-1, best)


def local_partials(Q2, kv: TiledKV | DeviceKV, shards: PositionShards, ws, positions, span_lo, span_hi):
    """Attend each query over this rank's part of its window and of each of its spans.

    Q2 [B, HQ, BLK, D]; kv: from ``device.keys_for`` (the Triton kernels or the reference's tiles);
    ws [B, BLK]; positions [BLK]; span_lo, span_hi [B, HQ, BLK, K] global inclusive.
    Returns out [B, HQ, BLK, 1 + K, D] and lse [B, HQ, BLK, 1 + K]; interval 0 is the window.
    """
    batch, q_heads, block, dim = Q2.shape
    window_lo = ws[:, None, :, None].expand(batch, q_heads, block, 1)
    window_hi = positions[None, None, :, None].expand(batch, q_heads, block, 1)
    lo, hi = shards.local_interval(torch.cat([window_lo, span_lo], -1), torch.cat([window_hi, span_hi], -1))
    if isinstance(kv, DeviceKV):
        return device_interval_attention(Q2, kv, lo, hi)
    intervals = lo.shape[-1]
    heads = torch.arange(q_heads, device=Q2.device) // (q_heads // kv.kv_heads)
    sequence = torch.arange(batch, device=Q2.device)[:, None] * kv.kv_heads + heads[None, :]
    base = (sequence * kv.length)[:, :, None, None]  # [B, HQ, 1, 1]
    q = Q2.to(kv.keys.dtype) * (1.0 / math.sqrt(dim))
    q = q[:, :, :, None, :].expand(batch, q_heads, block, intervals, dim)
    out, lse = interval_attention(q.reshape(-1, dim), kv, (base + lo).reshape(-1), (base + hi).reshape(-1))
    return out.view(batch, q_heads, block, intervals, dim), lse.view(batch, q_heads, block, intervals)


def merge_partials(out: torch.Tensor, lse: torch.Tensor, group=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge every rank's partial attention over disjoint key sets by log-sum-exp, in rank order.

    out [..., D], lse [...] (-inf: no keys). Returns the attention over the union and its lse.
    """
    outs, lses = all_gather_stacked(out, group), all_gather_stacked(lse, group)
    top = lses.amax(dim=0)
    top = torch.where(torch.isfinite(top), top, 0.0)
    weight = torch.exp(lses - top)  # [W, ...]
    total = weight.sum(dim=0)
    nonempty = total > 0
    safe = torch.where(nonempty, total, 1.0)
    merged = (weight[..., None] * outs).sum(dim=0) / safe[..., None]
    return merged, torch.where(nonempty, top + torch.log(safe), NEG_INF)


def context_parallel_dense_attention(
    Q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    *,
    shards: PositionShards,
    group=None,
) -> torch.Tensor:
    """Causal dense GQA attention (scale D ** -0.5) with this rank's keys, merged over the ranks.

    Q [B, HQ, LQ, D], the same on every rank; K, V [B, HKV, LKV_local, D], this rank's keys in position
    order; cache_position [LQ]. Each query attends to keys ``0 .. q``. Returns [B, HQ, LQ, D] in Q's dtype.
    """
    batch, q_heads, q_len, dim = Q.shape
    if q_len == 0:
        return Q.new_empty(batch, q_heads, 0, dim)
    positions = cache_position.to(device=Q.device, dtype=torch.int64)
    local_len = shards.count_below(int(cache_position.max()) + 1)
    require(K.shape[2] >= local_len, f"K: {K.shape[2]} local keys, the queries need {local_len}")
    K, V = K[:, :, :local_len], V[:, :, :local_len]
    kv = keys_for(Q, K, V)
    outputs = []
    for i in range(0, q_len, DEFAULT_BLOCK_Q):
        rows = positions[i : i + DEFAULT_BLOCK_Q]
        first = torch.zeros(batch, rows.numel(), dtype=torch.int64, device=Q.device)
        none = first[:, None, :, None].expand(batch, q_heads, rows.numel(), 0)
        out, lse = local_partials(Q[:, :, i : i + DEFAULT_BLOCK_Q], kv, shards, first, rows, none, none)
        outputs.append(merge_partials(out, lse, group)[0][..., 0, :])
    return torch.cat(outputs, dim=2).to(Q.dtype)
