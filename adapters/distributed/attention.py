"""Attention mixers whose keys are sharded by position over the ranks (context parallel).

They wrap the model's own attention module, so the projections (and their weights) are the same;
only the cache (``ShardedKVCache``) and the attention call (``kernels.superlinear.parallel``) differ.
The projections run on every rank for every token: hidden states are replicated.
"""

from __future__ import annotations

import torch
from torch import nn

from superlinear.kernels.superlinear.parallel import (
    context_parallel_attention,
    context_parallel_dense_attention,
)

from ..hybrid.attention import DenseAttention, SuperlinearAttention
from .cache import ShardedKVCache

__all__ = ["ContextParallelAttention"]


class ContextParallelAttention(nn.Module):
    """Superlinear or dense attention of one layer over keys sharded by position; same output on every rank."""

    def __init__(self, attention: DenseAttention, group=None):
        super().__init__()
        self.attention = attention
        self.group = group

    def forward(self, hidden: torch.Tensor, cache: ShardedKVCache, pos0: int | torch.Tensor) -> torch.Tensor:
        """Attend from ``hidden`` [1, L, H] at positions pos0.. over the sharded keys; return [1, L, H].

        A device ``pos0`` (one-token decode) is read on the host: this path is not graph-captured.
        """
        if isinstance(pos0, torch.Tensor):
            pos0 = int(pos0.reshape(-1)[0])
        inner = self.attention
        k = inner._heads(inner.k_proj(hidden), inner.num_kv_heads)
        v = inner._heads(inner.v_proj(hidden), inner.num_kv_heads)
        keys, values = cache.write(pos0, k, v)
        # On the host: the attention reads the last position without waiting for the device.
        positions = torch.arange(pos0, pos0 + hidden.shape[1])
        q2 = inner._heads(inner.q_proj(hidden), inner.num_heads)
        if isinstance(inner, SuperlinearAttention):
            q1 = inner._heads(inner.q1_proj(hidden), inner.num_heads)
            out = context_parallel_attention(
                q1,
                q2,
                keys,
                values,
                positions,
                params=inner.params,
                shards=cache.shards,
                group=self.group,
                block_q=inner.block_q,
            )
        else:
            out = context_parallel_dense_attention(
                q2, keys, values, positions, shards=cache.shards, group=self.group
            )
        return inner._merge(out)
