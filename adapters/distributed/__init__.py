"""Run the hybrid model over several ranks with torch.distributed: context and expert parallel."""

from .launch import RanksFailed, backend_for, init_rank, spawn_ranks
from .model import shard_model, sharded_state
from .plan import ShardPlan
from .state import ShardedState, import_sharded

__all__ = [
    "RanksFailed",
    "ShardPlan",
    "ShardedState",
    "backend_for",
    "import_sharded",
    "init_rank",
    "shard_model",
    "sharded_state",
    "spawn_ranks",
]
