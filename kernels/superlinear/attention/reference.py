"""Superlinear attention prefill, reference: the ground truth every kernel is checked against.

Queries are processed in blocks of ``block_q``; within a block, ``search.reference.route`` picks the
anchors and spans and ``span.reference.attend_block`` attends and gates (docs/attention.md steps 1-7). No
[LQ, LKV] matrix is ever built: memory per block is O(block_q * HQ * (W + K * span)).
"""

import torch

from ..params import SuperlinearParams
from ..span.reference import attend_block, key_context

DEFAULT_BLOCK_Q = 256


def superlinear_attention_reference(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None,
    params: SuperlinearParams,
    block_q: int | None = None,
) -> torch.Tensor:
    """Compute Superlinear attention for queries at any positions against keys at ``0 .. LKV - 1``.

    Q1 (search), Q2 (attention): [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; cache_position: [LQ] absolute query
    positions; attention_mask: None or [B, LKV] (nonzero = valid; its first valid index is ``start``).
    Arguments are assumed validated. Returns [B, HQ, LQ, D] in Q2's dtype; a query before its row's
    ``start`` (left padding) has no keys and gets 0.
    """
    batch, q_heads, q_len, dim = Q2.shape
    if q_len == 0:
        return Q2.new_empty(batch, q_heads, 0, dim)
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    context = key_context(K, V, attention_mask, int(positions.max()), params)
    block = block_q or DEFAULT_BLOCK_Q
    outputs = [
        attend_block(
            Q1[:, :, i : i + block], Q2[:, :, i : i + block], positions[i : i + block], context, params
        )
        for i in range(0, q_len, block)
    ]
    return torch.cat(outputs, dim=2).to(Q2.dtype)
