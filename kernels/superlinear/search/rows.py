"""Span search for one query per batch row, each row at its own position over its own KV buffer.

The rows' keys live in separate contiguous buffers [1, HKV, cap_b, D] (a decode batch of sessions): the
search kernel of ``search.prefill`` reads row b's keys at ``k_base + k_off[b]`` with ``cap[b]`` keys per
head, and its position from a device tensor, so a batch of any composition is one launch sequence with
no host sync (CUDA-graph capturable). The stripes are split exactly as the single-row decode splits them,
so each row selects the slots its own ``triton_decode`` would.
"""

import torch
import triton

from ...common.toolkit import MIN_DOT_BLOCK, block_d, interpreting, padded_block
from .prefill import MAX_SPLITS, SpanRoutes, _search_kernel, _select
from .tables import RoutingTables

DECODE_BLOCK_J = 64  # the stripes per step (and per split) of the single-row decode's search


def search_spans_rows(
    Q1, k_base, k_off, caps, positions, tables: RoutingTables, num_spans: int
) -> SpanRoutes:
    """Select each (row, query head)'s ``num_spans`` spans; returns ``SpanRoutes`` of shape [B, HQ, 1, K].

    Q1: [B, HQ, 1, D] fp16/bf16; k_base: a [.., HKV, .., D] tensor of the keys' dtype whose data pointer
    the offsets count from; k_off, caps: [B] int64 device tables (row b's keys are the contiguous
    [HKV, caps[b], D] at element ``k_off[b]`` from ``k_base``); positions: [B] int64 device, each
    < ``caps[b]`` and < ``tables.capacity``. No mask: every row's keys start at 0.
    """
    batch, q_heads, _, dim = Q1.shape
    kv_heads = k_base.shape[1]
    n_stripes = tables.stripes.numel()
    splits = max(1, min(MAX_SPLITS, triton.cdiv(n_stripes, DECODE_BLOCK_J)))
    split_len = triton.cdiv(triton.cdiv(max(n_stripes, 1), splits), DECODE_BLOCK_J) * DECODE_BLOCK_J
    starts = torch.zeros(batch, dtype=torch.int64, device=Q1.device)
    counts = torch.searchsorted(tables.stripes, positions + 1, right=True)
    track = padded_block(num_spans + 1)
    keys = torch.empty(batch, q_heads, 1, splits, track, dtype=torch.int64, device=Q1.device)
    # fmt: off
    _search_kernel[(1, batch * kv_heads, splits)](
        Q1, k_base, starts, starts, positions, counts, tables.stripes, keys, k_off, caps,
        *Q1.stride(), 0, 0, dim, 1, 0, 0,
        kv_heads, 1, split_len,
        G=q_heads // kv_heads, D=dim, SPLITS=splits, BLOCK_G=padded_block(q_heads // kv_heads, MIN_DOT_BLOCK),
        BLOCK_D=block_d(dim), BLOCK_J=DECODE_BLOCK_J, KP=track,
        HAS_MASK=False, F32=interpreting(), ROWS=True, num_warps=4, num_stages=2,
    )
    # fmt: on
    # The select kernel reads query i's position at positions[i % LQ]: the (row, head) pairs as the LQ
    # queries of one sequence, each with its row's position.
    flat = keys.view(1, 1, batch * q_heads, splits, track)
    routes = _select(
        flat,
        positions[:, None].expand(batch, q_heads).reshape(-1),
        starts[:1],
        tables,
        tables.capacity,
        num_spans,
    )
    shape = (batch, q_heads, 1, num_spans)
    return SpanRoutes(
        routes.lo.view(shape),
        routes.hi.view(shape),
        routes.scores.view(shape),
        starts,
        routes.anchors.view(shape),
    )
