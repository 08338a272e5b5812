"""The two collectives context-parallel attention needs, over torch.distributed (NCCL or gloo).

Results are gathered rather than all-reduced, and every rank then combines them in rank order: every
rank computes bit-identical outputs, so the replicated parts of a model never drift apart.
"""

import torch
import torch.distributed as dist


def world_of(group) -> int:
    """Return the number of ranks of ``group`` (1 when torch.distributed is not initialised)."""
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size(group)


def all_gather_stacked(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Return ``[world, *tensor.shape]``: every rank's ``tensor``, in rank order (same shape on every rank)."""
    world = world_of(group)
    if world == 1:
        return tensor[None]
    tensor = tensor.contiguous()
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor, group=group)
    return torch.stack(parts)


def gather_to_first(tensor: torch.Tensor, group=None, rank: int = 0) -> list[torch.Tensor] | None:
    """Gather every rank's ``tensor`` (one shape on all ranks) to rank 0: the list in rank order there,
    None on the other ranks; ``rank`` is the caller's rank."""
    world = world_of(group)
    if world == 1:
        return [tensor]
    parts = [torch.empty_like(tensor) for _ in range(world)] if rank == 0 else None
    dist.gather(tensor.contiguous(), parts, dst=0, group=group)
    return parts
