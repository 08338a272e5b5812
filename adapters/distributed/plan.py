"""Where one process sits among the ranks of a sharded model."""

from __future__ import annotations

import attrs

from superlinear.kernels.superlinear.parallel import DEFAULT_BLOCK, PositionShards

__all__ = ["ShardPlan"]


@attrs.frozen
class ShardPlan:
    """``rank`` of ``world`` in process ``group`` (None: the default group); positions dealt in blocks of
    ``block`` (``PositionShards``); Mamba-2 layers split by heads if ``split_mamba`` and the groups allow."""

    rank: int
    world: int
    block: int = DEFAULT_BLOCK
    group: object = None
    # Split Mamba-2 layers by heads when the SSM groups divide evenly (else they stay replicated).
    split_mamba: bool = True

    @property
    def shards(self) -> PositionShards:
        """This rank's position layout."""
        return PositionShards(self.world, self.rank, self.block)

    def splits_mamba(self, cfg) -> bool:
        """Whether this plan splits ``cfg``'s Mamba-2 layers over the ranks."""
        return self.split_mamba and self.world > 1 and cfg.n_groups % self.world == 0
