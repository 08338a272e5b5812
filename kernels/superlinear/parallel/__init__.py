"""Context-parallel Superlinear attention over torch.distributed: a session's keys sharded by position."""

from .attention import (
    context_parallel_attention,
    context_parallel_dense_attention,
    local_top_k,
    merge_partials,
    merge_top_k,
)
from .collectives import all_gather_stacked, gather_to_first, world_of
from .layout import DEFAULT_BLOCK, PositionShards

__all__ = [
    "DEFAULT_BLOCK",
    "PositionShards",
    "all_gather_stacked",
    "context_parallel_attention",
    "context_parallel_dense_attention",
    "gather_to_first",
    "local_top_k",
    "merge_partials",
    "merge_top_k",
    "world_of",
]
