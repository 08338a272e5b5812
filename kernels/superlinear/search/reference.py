"""Span search, reference: stripe anchors, search scores, top-k and span bounds (docs/attention.md steps 1-5).

Everything here works on one block of queries at a time, with sizes B (batch), HQ / HKV (query / KV
heads), BLK (queries in the block), NA (candidate anchors of the block) and K (``num_spans``). Positions
are absolute key indices; ``starts`` [B] is the first valid key of each batch row.
"""

from dataclasses import dataclass

import torch

from ...common.powers import ceil_scaled_power, stripe_offsets
from ..params import SuperlinearParams


@dataclass(frozen=True)
class Routing:
    """The search result of a block of queries: where each slot attends, and its gate logit.

    anchors, span_lo, span_hi: [B, HQ, BLK, K] int64 positions (spans inclusive; ``lo > hi`` when empty).
    valid: [B, HQ, BLK, K] bool, False for a missing slot (fewer than K valid anchors).
    scores: [B, HQ, BLK, K] search scores of the selected anchors (fp32, differentiable in Q1 and K).
    window_start: [B, BLK] int64 ``ws``; the window is ``[ws, q]``.
    """

    anchors: torch.Tensor
    valid: torch.Tensor
    scores: torch.Tensor
    span_lo: torch.Tensor
    span_hi: torch.Tensor
    window_start: torch.Tensor


def sequence_starts(attention_mask: torch.Tensor | None, batch: int, length: int, device) -> torch.Tensor:
    """Return ``start`` [B]: the first valid key of each row (``length`` when a row has none)."""
    if attention_mask is None:
        return torch.zeros(batch, dtype=torch.int64, device=device)
    valid = attention_mask != 0
    first = valid.to(torch.int64).argmax(dim=1)
    return torch.where(valid.any(dim=1), first, length).to(device)


def all_stripe_offsets(params: SuperlinearParams, max_position: int) -> torch.Tensor:
    """Return ``P(j)`` for ``j = sw_index + 1, ...`` while ``P(j) <= max_position + 1`` (int64 ascending)."""
    return stripe_offsets(params.stripe_exponent, params.sw_index + 1, max_position + 1)


def window_start(positions: torch.Tensor, starts: torch.Tensor, window: int) -> torch.Tensor:
    """Return ``ws = max(q - W + 1, start)`` [B, BLK] for positions [BLK] and starts [B]."""
    return torch.maximum(positions[None, :] - window + 1, starts[:, None])


def candidate_anchors(positions, starts, attention_mask, offsets, num_spans):
    """Return every stripe anchor of the block, farthest first, and its validity.

    positions [BLK]; starts [B]; attention_mask None or [B, LKV]; offsets: ``P(j)`` ascending from
    ``j = sw_index + 1`` (a table covering at least the block's largest position).
    Returns anchors [BLK, NA] with ``a_j = q + 1 - P(j)`` ascending in position along NA, and
    valid [B, BLK, NA] (``a_j >= start`` and the mask is set at ``a_j``). NA >= num_spans: missing
    anchors are padded as invalid columns on the far side.
    """
    limit = int(positions.max()) + 1
    # Farthest anchor (largest j) first: column order is position order, so stable sorting breaks ties
    # toward the smaller position, and a shorter table (decode) only drops columns on the far side.
    offsets = offsets[offsets <= limit].flip(0)
    anchors = positions[:, None] + 1 - offsets[None, :].to(positions.device)
    missing = num_spans - anchors.shape[1]
    if missing > 0:
        anchors = torch.cat([anchors.new_full((positions.numel(), missing), -1), anchors], dim=1)
    valid = anchors[None] >= starts[:, None, None]
    if attention_mask is not None:
        valid = valid & (attention_mask[:, anchors.clamp_min(0)] != 0)
    return anchors, valid


def search_scores(Q1: torch.Tensor, K: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Return ``dot(Q1[q], K[a])`` [B, HQ, BLK, NA], unscaled, for Q1 [B, HQ, BLK, D], anchors [BLK, NA].

    The dot products accumulate in float64 and round once to fp32 (float64 inputs stay float64): the
    rounded score then hardly depends on summation order, so every path of the reference (prefill,
    chunked, decode) sees the same scores and breaks the same ties.
    """
    batch, q_heads, block, dim = Q1.shape
    kv_heads = K.shape[1]
    keys = K[:, :, anchors.clamp_min(0)]  # [B, HKV, BLK, NA, D]
    queries = Q1.reshape(batch, kv_heads, q_heads // kv_heads, block, dim)
    scores = torch.einsum("bkgqd,bkqad->bkgqa", queries.double(), keys.double())
    out_dtype = torch.float64 if Q1.dtype == torch.float64 else torch.float32
    return scores.reshape(batch, q_heads, block, -1).to(out_dtype)


def select_top_k(scores: torch.Tensor, valid: torch.Tensor, num_spans: int):
    """Pick the ``num_spans`` valid anchors with the highest scores, best first.

    scores [B, HQ, BLK, NA]; valid [B, BLK, NA] with columns in ascending position. Ties go to the smaller
    position (a stable sort keeps column order among equals). Returns columns [B, HQ, BLK, K] and
    slot_valid [B, HQ, BLK, K].
    """
    valid = valid[:, None].expand_as(scores)
    ranked = scores.detach().masked_fill(~valid, float("-inf"))
    columns = torch.sort(ranked, dim=-1, descending=True, stable=True).indices[..., :num_spans]
    return columns, torch.gather(valid, -1, columns)


def span_bounds(anchors, slot_valid, positions, starts, ws, params: SuperlinearParams):
    """Return the inclusive span ``[max(a - b, start), min(a + f, q, ws - 1)]`` of each selected anchor.

    anchors, slot_valid: [B, HQ, BLK, K]; positions [BLK]; starts [B]; ws [B, BLK]. Invalid slots get the
    empty span ``[0, -1]``. A valid anchor satisfies ``start <= a <= ws - 1`` and ``a <= q``, so its span
    always contains ``a`` and is never empty.
    """
    # Queries before start (left padding) have t <= 0 and no valid anchor; clamp so the power is defined.
    t = (positions[None, :] + 1 - starts[:, None]).clamp_min(1)  # [B, BLK]
    back = ceil_scaled_power(t, params.backward, params.span_exponent)[:, None, :, None]
    fwd = ceil_scaled_power(t, params.forward, params.span_exponent)[:, None, :, None]
    lo = torch.maximum(anchors - back, starts[:, None, None, None])
    hi = torch.minimum(anchors + fwd, positions[None, None, :, None])
    hi = torch.minimum(hi, ws[:, None, :, None] - 1)
    return torch.where(slot_valid, lo, 0), torch.where(slot_valid, hi, -1)


def check_routing(routing: Routing, positions: torch.Tensor, starts: torch.Tensor) -> None:
    """Raise RuntimeError unless every valid span lies in ``[start, min(q, ws - 1)]``, clear of the window.

    An expensive invariant check (host sync), run under SPAN_ATTENTION_ENABLE_ASSERTS=1.
    """
    lo, hi, valid = routing.span_lo, routing.span_hi, routing.valid
    inside = (lo >= starts[:, None, None, None]) & (lo <= hi) & (hi <= positions[None, None, :, None])
    inside &= hi < routing.window_start[:, None, :, None]
    if not bool((inside | ~valid).all()):
        raise RuntimeError("a selected span leaves [start, ws - 1]: spans must not overlap the window")


def route(Q1, K, positions, starts, attention_mask, params: SuperlinearParams, offsets) -> Routing:
    """Run the span search for a block of queries.

    Q1 [B, HQ, BLK, D]; K [B, HKV, LKV, D]; positions [BLK]; starts [B]; attention_mask None or [B, LKV];
    offsets from ``all_stripe_offsets`` for at least the block's largest position.
    """
    anchors, valid = candidate_anchors(positions, starts, attention_mask, offsets, params.num_spans)
    scores = search_scores(Q1, K, anchors)
    columns, slot_valid = select_top_k(scores, valid, params.num_spans)
    selected = anchors.expand(*columns.shape[:2], *anchors.shape).gather(-1, columns)
    ws = window_start(positions, starts, params.window)
    lo, hi = span_bounds(selected, slot_valid, positions, starts, ws, params)
    return Routing(
        anchors=torch.where(slot_valid, selected, -1),
        valid=slot_valid,
        scores=torch.gather(scores, -1, columns),
        span_lo=lo,
        span_hi=hi,
        window_start=ws,
    )
