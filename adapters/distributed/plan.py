"""Where one process sits among the ranks of a sharded model."""

from __future__ import annotations

import attrs

from ...kernels.superlinear.parallel import DEFAULT_BLOCK, PositionShards

__all__ = ["ShardPlan"]


@attrs.frozen
class ShardPlan:
    """``rank`` of ``world`` in process ``group`` (None: the default group); positions dealt in blocks of
    ``block`` (``PositionShards``)."""

    rank: int
    world: int
    block: int = DEFAULT_BLOCK
    group: object = None

    @property
    def shards(self) -> PositionShards:
        """This rank's position layout."""
        return PositionShards(self.world, self.rank, self.block)
