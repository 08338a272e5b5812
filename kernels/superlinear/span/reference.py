"""Span attention, reference: per-span softmax attention merged with the window, and the gate.

docs/attention.md steps 6-7 for one block of queries, plus the decode entry point (one query). The span
search (steps 1-5) lives in ``search.reference``.

The window and every span are contiguous key intervals, so attention runs per interval without
gathering keys per query: the keys of all (batch, KV head) sequences are flattened and cut into tiles of
``TILE`` keys; every (interval, tile) pair whose tile meets the interval becomes one slot, and slots that
read the same tile are batched ``GROUP`` at a time into one matmul against that tile. Each slot yields a
softmax over its part of the interval and that part's log-sum-exp; the slots of an interval merge by
log-sum-exp. Memory per block is O(intervals * (interval length + TILE)) scores plus the tiles read.
"""

import math
from dataclasses import dataclass

import torch

from ...common.env import asserts_enabled
from ...common.validation import require
from ..params import SuperlinearParams
from ..search.reference import Routing, all_stripe_offsets, check_routing, route, sequence_starts

TILE = 64
GROUP = 32
NEG_INF = float("-inf")


@dataclass(frozen=True)
class TiledKV:
    """Keys and values of every (batch, KV head) sequence, flattened and cut into tiles.

    keys, values: [NT, TILE, D] in the compute dtype; flat key ``s * length + i`` is position ``i`` of
    sequence ``s = b * HKV + g``; the tail of the last tile is zero padding no interval reaches.
    """

    keys: torch.Tensor
    values: torch.Tensor
    length: int
    kv_heads: int


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the accumulation dtype: float64 for float64 inputs (gradcheck), fp32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tile_keys_values(K: torch.Tensor, V: torch.Tensor, tile: int = TILE) -> TiledKV:
    """Flatten K, V [B, HKV, LKV, D] into ``TiledKV`` tiles in the compute dtype."""
    batch, kv_heads, length, dim = K.shape
    pad = (-batch * kv_heads * length) % tile
    dtype = compute_dtype(K.dtype)

    def tiles(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x.reshape(-1, dim).to(dtype), (0, 0, 0, pad)).view(-1, tile, dim)

    return TiledKV(tiles(K), tiles(V), length, kv_heads)


def interval_attention(q: torch.Tensor, kv: TiledKV, lo: torch.Tensor, hi: torch.Tensor):
    """Softmax attention of each row's query over its own contiguous interval of flat keys.

    q: [N, D] queries, already scaled; lo, hi: [N] inclusive flat key indices (``lo > hi``: empty).
    Returns out [N, D] (0 for an empty row) and lse [N] (the log-sum-exp of the row's scores, -inf for an
    empty row).
    """
    tile = kv.keys.shape[1]
    slot_row, real, group_tile = _slot_layout(lo, hi, tile)
    n_groups, dim = group_tile.numel(), q.shape[1]
    scores = torch.bmm(q[slot_row].view(n_groups, GROUP, dim), kv.keys[group_tile].transpose(1, 2))
    scores = scores.view(-1, tile)  # [NS, TILE], one row per slot
    first_key = torch.repeat_interleave(group_tile * tile, GROUP)
    # Padding slots see column 0 only, which keeps their softmax finite; their lse is dropped below.
    lo_col = torch.where(real, lo[slot_row] - first_key, 0)[:, None]
    hi_col = torch.where(real, hi[slot_row] - first_key, 0)[:, None]
    column = torch.arange(tile, device=q.device)
    scores = torch.where((column >= lo_col) & (column <= hi_col), scores, NEG_INF)
    probs = torch.softmax(scores, dim=-1)
    # The largest probability is 1 / sum(exp(s - max s)), so this is the slot's log-sum-exp, with the
    # exact gradient, at the cost of two max reductions instead of a second pass of exponentials.
    slot_lse = scores.amax(dim=-1) - torch.log(probs.amax(dim=-1))
    slot_lse = slot_lse.masked_fill(~real, NEG_INF)
    slot_out = torch.bmm(probs.view(n_groups, GROUP, tile), kv.values[group_tile]).view(-1, dim)
    return _merge_slots(slot_out, slot_lse, slot_row, q.shape[0])


def _slot_layout(lo: torch.Tensor, hi: torch.Tensor, tile: int):
    """Lay out every (row, tile) pair whose tile meets the row's interval into groups of GROUP slots.

    All slots of a group read one tile, so a group is one small matmul against that tile. Returns
    slot_row [NS] (the row of each slot; 0 for padding), real [NS] (False for padding) and
    group_tile [NG] (the tile each group reads), with NS = NG * GROUP.
    """
    first = lo.div(tile, rounding_mode="floor")
    count = torch.where(hi >= lo, hi.div(tile, rounding_mode="floor") - first + 1, 0)
    pair_row = torch.repeat_interleave(torch.arange(lo.numel(), device=lo.device), count)
    run_start = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    pair_tile = first[pair_row] + torch.arange(pair_row.numel(), device=lo.device) - run_start
    pair_tile, order = torch.sort(pair_tile, stable=True)
    tiles, counts = torch.unique_consecutive(pair_tile, return_counts=True)
    groups = (counts + GROUP - 1) // GROUP
    shift = (torch.cumsum(groups, 0) - groups) * GROUP - (torch.cumsum(counts, 0) - counts)
    dest = torch.arange(pair_tile.numel(), device=lo.device) + torch.repeat_interleave(shift, counts)
    n_slots = int(groups.sum()) * GROUP
    slot_row = torch.zeros(n_slots, dtype=torch.int64, device=lo.device).index_copy(0, dest, pair_row[order])
    real = torch.zeros(n_slots, dtype=torch.bool, device=lo.device).index_fill(0, dest, True)
    return slot_row, real, torch.repeat_interleave(tiles, groups)


def _merge_slots(slot_out, slot_lse, slot_row, n_rows: int):
    """Merge the partial softmaxes of each row's slots by log-sum-exp; returns out [N, D], lse [N]."""
    # Maxima only stabilise the sums, so they carry no gradient.
    top = slot_lse.new_full((n_rows,), NEG_INF).scatter_reduce(0, slot_row, slot_lse.detach(), "amax")
    top = torch.where(torch.isfinite(top), top, 0.0)
    total = slot_lse.new_zeros(n_rows).index_add(0, slot_row, torch.exp(slot_lse - top[slot_row]))
    nonempty = total > 0
    lse = torch.where(nonempty, top + torch.log(torch.where(nonempty, total, 1.0)), NEG_INF)
    weight = torch.exp(slot_lse - torch.where(nonempty, lse, 0.0)[slot_row])
    out = slot_out.new_zeros(n_rows, slot_out.shape[1]).index_add(0, slot_row, weight[:, None] * slot_out)
    return out, lse


def merge_by_lse(out_a, lse_a, out_b, lse_b) -> torch.Tensor:
    """Return attention over the union of two disjoint key sets from each set's (out [..., D], lse [...]).

    An empty set has lse -inf and contributes nothing; when both are empty the result is 0.
    """
    top = torch.maximum(lse_a, lse_b).detach()
    top = torch.where(torch.isfinite(top), top, 0.0)
    weight_a, weight_b = torch.exp(lse_a - top), torch.exp(lse_b - top)
    total = weight_a + weight_b
    safe_total = torch.where(total > 0, total, 1.0)
    return (weight_a[..., None] * out_a + weight_b[..., None] * out_b) / safe_total[..., None]


def gate(slot_out: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Return ``sum_i g_i O_i`` with ``g = softmax(scores)`` over valid slots, uniform if none is valid.

    slot_out [..., K, D]; scores, valid [..., K]. Returns [..., D].
    """
    logits = scores.masked_fill(~valid, NEG_INF)
    # A row with no valid slot gets constant logits, so it sends no gradient into the search scores.
    logits = torch.where(valid.any(dim=-1, keepdim=True), logits, torch.zeros_like(logits))
    return (torch.softmax(logits, dim=-1)[..., None] * slot_out).sum(dim=-2)


@dataclass(frozen=True)
class KeyContext:
    """What every query block of one call shares.

    keys: K [B, HKV, L, D] for the search, cut to the keys the call can read (L = last position + 1);
    kv: the same keys with V, tiled; starts [B]; attention_mask None or [B, L]; offsets: ``P(j)`` from
    ``j = sw_index + 1`` up to the last position + 1.
    """

    keys: torch.Tensor
    kv: TiledKV
    starts: torch.Tensor
    attention_mask: torch.Tensor | None
    offsets: torch.Tensor


def key_context(K, V, attention_mask, last_position: int, params: SuperlinearParams) -> KeyContext:
    """Prepare the keys of a call whose queries sit at or before ``last_position``.

    K, V: [B, HKV, LKV, D]; attention_mask None or [B, LKV].
    """
    # Keys after the last query are never read; cutting them makes decode cost follow the position.
    length = last_position + 1
    K, V = K[:, :, :length], V[:, :, :length]
    mask = None if attention_mask is None else attention_mask[:, :length]
    starts = sequence_starts(mask, K.shape[0], length, K.device)
    offsets = all_stripe_offsets(params, last_position)
    return KeyContext(K, tile_keys_values(K, V), starts, mask, offsets)


def attend_block(Q1, Q2, positions, context: KeyContext, params: SuperlinearParams) -> torch.Tensor:
    """Superlinear attention of one block of queries (docs/attention.md steps 1-7).

    Q1, Q2: [B, HQ, BLK, D]; positions [BLK] int64. Returns [B, HQ, BLK, D] in the compute dtype.
    """
    starts = context.starts
    routing = route(Q1, context.keys, positions, starts, context.attention_mask, params, context.offsets)
    if asserts_enabled():
        check_routing(routing, positions, starts)
    window_out, window_lse, span_out, span_lse = _window_and_spans(Q2, context.kv, positions, routing)
    slot_out = merge_by_lse(window_out[..., None, :], window_lse[..., None], span_out, span_lse)
    return gate(slot_out, routing.scores, routing.valid)


def _window_and_spans(Q2, kv: TiledKV, positions, routing: Routing):
    """Attend each query to its window [ws, q] and to each slot's span, in one interval pass.

    Returns window out [B, HQ, BLK, D], window lse [B, HQ, BLK], span out [B, HQ, BLK, K, D] and
    span lse [B, HQ, BLK, K].
    """
    batch, q_heads, block, dim = Q2.shape
    num_spans = routing.valid.shape[-1]
    group = q_heads // kv.kv_heads
    sequence = torch.arange(batch, device=Q2.device)[:, None] * kv.kv_heads
    sequence = sequence + torch.arange(q_heads, device=Q2.device)[None, :] // group
    base = (sequence * kv.length)[:, :, None]  # [B, HQ, 1]
    window_lo = (base + routing.window_start[:, None, :]).reshape(-1)
    window_hi = (base + positions[None, None, :]).expand(batch, q_heads, block).reshape(-1)
    span_lo = (base[..., None] + routing.span_lo).reshape(-1)
    span_hi = (base[..., None] + routing.span_hi).reshape(-1)
    q = Q2.to(kv.keys.dtype) * (1.0 / math.sqrt(dim))
    span_q = q[:, :, :, None, :].expand(batch, q_heads, block, num_spans, dim)
    out, lse = interval_attention(
        torch.cat([q.reshape(-1, dim), span_q.reshape(-1, dim)]),
        kv,
        torch.cat([window_lo, span_lo]),
        torch.cat([window_hi, span_hi]),
    )
    n_window = batch * q_heads * block
    return (
        out[:n_window].view(batch, q_heads, block, dim),
        lse[:n_window].view(batch, q_heads, block),
        out[n_window:].view(batch, q_heads, block, num_spans, dim),
        lse[n_window:].view(batch, q_heads, block, num_spans),
    )


def decode_reference(Q1, Q2, K, V, cache_position, attention_mask, params: SuperlinearParams) -> torch.Tensor:
    """Superlinear attention of one query per row (decode), reference.

    Q1, Q2: [B, HQ, 1, D]; K, V: [B, HKV, LKV, D]; cache_position [1]; attention_mask None or [B, LKV].
    Arguments are assumed validated. Returns [B, HQ, 1, D] in Q2's dtype.
    """
    require(Q2.shape[2] == 1, f"Q2: decode takes one query per row, got LQ={Q2.shape[2]}")
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    context = key_context(K, V, attention_mask, int(positions[0]), params)
    return attend_block(Q1, Q2, positions, context, params).to(Q2.dtype)
