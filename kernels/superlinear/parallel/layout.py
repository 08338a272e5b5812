"""How a context is sharded by position: blocks of positions dealt round-robin to the ranks.

Position ``p`` lies in block ``p // block``, and block ``i`` belongs to rank ``i % world``. Each rank keeps
its positions in ascending order, so its local key index of an owned position is the number of its
positions below it. Because that order follows the global one, the keys of any global interval
``[lo, hi]`` that a rank holds form one contiguous local interval: window and span attention run on
local keys unchanged. Dealing blocks round-robin (rather than one contiguous range per rank) keeps the
window, the spans and the growth of a decoding cache spread over every rank.
"""

from dataclasses import dataclass

import torch

DEFAULT_BLOCK = 256


@dataclass(frozen=True)
class PositionShards:
    """The position layout of one rank: ``world`` ranks, this one ``rank``, blocks of ``block`` positions."""

    world: int
    rank: int
    block: int = DEFAULT_BLOCK

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world or self.block < 1:
            raise ValueError(f"bad position layout: world={self.world} rank={self.rank} block={self.block}")

    def count_below(self, limit, rank: int | None = None):
        """Return how many positions ``< limit`` belong to ``rank`` (this rank by default).

        ``limit``: an int or an int64 tensor (elementwise); negative limits count 0.
        """
        rank = self.rank if rank is None else rank
        cycle = self.block * self.world
        if isinstance(limit, torch.Tensor):
            limit = limit.clamp_min(0)
            rest = (limit % cycle - rank * self.block).clamp(0, self.block)
            return (limit // cycle) * self.block + rest
        limit = max(int(limit), 0)
        return (limit // cycle) * self.block + min(max(limit % cycle - rank * self.block, 0), self.block)

    def owns(self, positions: torch.Tensor) -> torch.Tensor:
        """Return a bool tensor: which of ``positions`` (int64, any shape, >= 0) belong to this rank."""
        return (positions // self.block) % self.world == self.rank

    def local_interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map inclusive global intervals ``[lo, hi]`` to this rank's inclusive local ones (empty: lo > hi)."""
        return self.count_below(lo), self.count_below(hi + 1) - 1

    def positions(self, start: int, stop: int, rank: int | None = None) -> torch.Tensor:
        """Return the positions in ``[start, stop)`` that belong to ``rank``, ascending (int64)."""
        rank = self.rank if rank is None else rank
        span = torch.arange(start, max(stop, start), dtype=torch.int64)
        return span[(span // self.block) % self.world == rank]
