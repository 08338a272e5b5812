"""Run the hybrid model over several ranks with torch.distributed: context and expert parallel."""

from .launch import RanksFailed, backend_for, init_rank, spawn_ranks

__all__ = ["RanksFailed", "backend_for", "init_rank", "spawn_ranks"]
