"""The KV cache of one attention layer on one rank: only the positions this rank holds.

``ShardedKVCache`` keeps the ``KVCache`` interface in global positions (``capacity``, ``reallocate``,
``write``), so ``HybridState`` grows and restores it unchanged, while its buffers hold this rank's
positions only (``PositionShards``), in position order.
"""

from __future__ import annotations

import attrs
import torch

from superlinear.kernels.superlinear.parallel import PositionShards

from ..hybrid.state import KVCache

__all__ = ["ShardedKVCache"]


@attrs.define(eq=False)
class ShardedKVCache(KVCache):
    """Keys and values of the positions this rank holds: k, v [1, HKV, local capacity, D]."""

    shards: PositionShards = attrs.field(kw_only=True)
    # Global positions the buffers have room for (the local capacity is this rank's share of them).
    global_capacity: int = attrs.field(default=0, kw_only=True)

    @property
    def capacity(self) -> int:
        return self.global_capacity

    def reallocate(self, capacity: int, keep: int) -> None:
        """Make room for global positions ``0 .. capacity - 1``, keeping the first ``keep`` positions."""
        super().reallocate(self.shards.count_below(capacity), self.shards.count_below(keep))
        self.global_capacity = capacity

    def write(self, pos0: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the held positions of ``k``, ``v`` [1, HKV, L, D] (global positions pos0..) and return this
        rank's keys and values up to global position pos0 + L (local views)."""
        end = pos0 + k.shape[2]
        mine = self.shards.positions(pos0, end).to(k.device) - pos0
        first, stop = self.shards.count_below(pos0), self.shards.count_below(end)
        self.k[:, :, first:stop].copy_(k[:, :, mine])
        self.v[:, :, first:stop].copy_(v[:, :, mine])
        return self.k[:, :, :stop], self.v[:, :, :stop]

    def write_at(self, position: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Store one token at the device ``position`` [1] (if held here); return the whole buffers."""
        return self.write(int(position.reshape(-1)[0]), k, v)

    def held(self, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's keys and values of global positions ``0 .. stop - 1`` (views)."""
        count = self.shards.count_below(stop)
        return self.k[:, :, :count], self.v[:, :, :count]
