"""The per-sequence state of a sharded model, and its snapshots in the single-process format.

A ``ShardedState`` is a ``HybridState`` whose KV caches hold this rank's positions only; the recurrent
state, cursor and logits are replicated. ``export`` gathers the KV of all ranks to rank 0 and yields
exactly the arrays a single-process state exports (same names, shapes and order), so a sharded
session's snapshot loads into a single-process model; ``import_sharded`` loads a single-process
snapshot into a sharded model, each rank keeping its positions. Every rank must make the same calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs
import torch
import torch.distributed as dist

from superlinear.kernels.superlinear.parallel import gather_to_first, world_of

from ..hybrid.config import HybridConfig
from ..hybrid.state import HybridState, KVCache, MambaCache
from .cache import ShardedKVCache
from .mamba import assemble_mamba, local_mamba_config, slice_mamba_arrays
from .plan import ShardPlan

__all__ = ["ShardedState", "import_local", "import_sharded", "rank_arrays"]


@attrs.define(eq=False)
class ShardedState(HybridState):
    """A state whose KV caches (``ShardedKVCache``) hold this rank's positions of the sequence."""

    plan: ShardPlan | None = attrs.field(default=None, kw_only=True)
    # The whole model's config (Mamba layers may hold only this rank's heads).
    config: HybridConfig | None = attrs.field(default=None, kw_only=True)
    # The id every rank knows this sequence by (given by rank 0 when a server drives the ranks).
    handle: int = attrs.field(default=0, kw_only=True)

    @classmethod
    def empty_sharded(
        cls, cfg: HybridConfig, max_seq_len: int, plan: ShardPlan, *, device, dtype
    ) -> ShardedState:
        """Create a sharded state holding no tokens."""
        local_cfg = local_mamba_config(cfg, plan.world) if plan.splits_mamba(cfg) else cfg
        full = HybridState.empty(local_cfg, max_seq_len, device=device, dtype=dtype)
        layers = [_shard_cache(cache, plan) for cache in full.layers]
        return cls(layers=layers, max_seq_len=max_seq_len, plan=plan, config=cfg)

    def fork(self) -> ShardedState:
        """Return an independent copy; each rank copies its own positions (no communication)."""
        layers = []
        for cache in self.layers:
            if isinstance(cache, ShardedKVCache):
                keep = min(cache.capacity, max(self.cursor, 1))
                k, v = cache.held(keep)
                layers.append(ShardedKVCache(k.clone(), v.clone(), shards=cache.shards, global_capacity=keep))
            elif isinstance(cache, MambaCache):
                layers.append(MambaCache(cache.conv.clone(), cache.ssm.clone()))
            else:
                layers.append(None)
        logits = None if self.logits is None else self.logits.clone()
        return ShardedState(
            layers=layers,
            max_seq_len=self.max_seq_len,
            cursor=self.cursor,
            logits=logits,
            plan=self.plan,
            config=self.config,
        )

    def export(self) -> Iterator[tuple[str, torch.Tensor | None]]:
        """Yield the single-process ``export()`` arrays; KV is gathered to rank 0.

        Rank 0 gets CPU copies; the other ranks get ``None`` for every KV array and must still exhaust the
        iterator (it runs one collective per KV array).
        """
        yield "cursor", torch.tensor([self.cursor], dtype=torch.int64)
        for i, cache in enumerate(self.layers):
            if isinstance(cache, ShardedKVCache):
                yield f"layers.{i}.k", _gather_positions(cache.k, self.cursor, self.plan)
                yield f"layers.{i}.v", _gather_positions(cache.v, self.cursor, self.plan)
            elif isinstance(cache, MambaCache):
                yield f"layers.{i}.conv", self._recurrent(cache.conv, "conv")
                yield f"layers.{i}.ssm", self._recurrent(cache.ssm, "ssm")
        if self.logits is not None:
            yield "logits", self.logits.to("cpu", copy=True)

    def _recurrent(self, local: torch.Tensor, part: str) -> torch.Tensor | None:
        """A Mamba conv or SSM state in the single-process layout (gathered to rank 0 when split)."""
        if not self.plan.splits_mamba(self.config):
            return local.to("cpu", copy=True)
        parts = gather_to_first(local, self.plan.group, self.plan.rank)
        return None if parts is None else assemble_mamba(parts, self.config, part)


def import_sharded(model, arrays: Mapping[str, torch.Tensor], max_seq_len: int) -> ShardedState:
    """Build a sharded state for ``model`` (see ``shard_model``) from single-process ``export()`` arrays.

    Every rank passes the same arrays and keeps its own positions. Raises ValueError like
    ``HybridState.from_arrays``.
    """
    plan: ShardPlan = model.shard_plan
    cfg = model.config

    def empty(_cfg, length, *, device, dtype):
        return ShardedState.empty_sharded(cfg, length, plan, device=device, dtype=dtype)

    if plan.splits_mamba(cfg):
        # Checked against the whole layout here; from_arrays then checks the rest against this rank's.
        arrays = slice_mamba_arrays(arrays, cfg, plan.rank, plan.world)
        cfg_arrays = local_mamba_config(cfg, plan.world)
    else:
        cfg_arrays = cfg
    return HybridState.from_arrays(
        cfg_arrays, arrays, max_seq_len=max_seq_len, device=model.device, dtype=model.dtype, empty=empty
    )


def rank_arrays(
    arrays: Mapping[str, torch.Tensor], cfg: HybridConfig, plan: ShardPlan, rank: int
) -> dict[str, torch.Tensor]:
    """The part of checked single-process ``export()`` arrays that ``rank`` keeps: KV of its positions,
    its Mamba slice when Mamba is split, the rest whole."""
    cursor = int(arrays["cursor"].reshape(()))
    positions = plan.shards.positions(0, cursor, rank=rank)
    if plan.splits_mamba(cfg):
        arrays = slice_mamba_arrays(arrays, cfg, rank, plan.world)
    return {
        name: array[:, :, positions].clone() if name.endswith((".k", ".v")) else array
        for name, array in arrays.items()
    }


def import_local(model, arrays: Mapping[str, torch.Tensor], max_seq_len: int) -> ShardedState:
    """Build this rank's sharded state from its ``rank_arrays`` (checked by rank 0 already)."""
    plan: ShardPlan = model.shard_plan
    cursor = int(arrays["cursor"].reshape(()))
    state = ShardedState.empty_sharded(
        model.config, max(max_seq_len, 1), plan, device=model.device, dtype=model.dtype
    )
    state.reserve(cursor)
    for i, cache in enumerate(state.layers):
        if isinstance(cache, ShardedKVCache):
            held = plan.shards.count_below(cursor)
            cache.k[:, :, :held].copy_(arrays[f"layers.{i}.k"])
            cache.v[:, :, :held].copy_(arrays[f"layers.{i}.v"])
        elif isinstance(cache, MambaCache):
            cache.conv.copy_(arrays[f"layers.{i}.conv"])
            cache.ssm.copy_(arrays[f"layers.{i}.ssm"])
    if cursor and "logits" in arrays:
        state.logits = arrays["logits"].to(device=model.device, dtype=torch.float32).clone()
    state.cursor = cursor
    return state


def _shard_cache(cache, plan: ShardPlan):
    if not isinstance(cache, KVCache):
        return cache
    return ShardedKVCache(cache.k, cache.v, shards=plan.shards, global_capacity=cache.capacity)


def _gather_positions(buffer: torch.Tensor, cursor: int, plan: ShardPlan) -> torch.Tensor | None:
    """Gather every rank's keys (or values) of positions ``0 .. cursor - 1`` to rank 0, in position order.

    buffer: this rank's [1, HKV, local, D]. Returns [1, HKV, cursor, D] on CPU on rank 0, else None.
    """
    shards = plan.shards
    world = world_of(plan.group)
    # Rank 0 holds the most positions; the others pad to its count so every part has one shape.
    most = shards.count_below(cursor, rank=0)
    part = buffer.new_zeros(*buffer.shape[:2], most, buffer.shape[3])
    count = shards.count_below(cursor)
    part[:, :, :count] = buffer[:, :, :count]
    if world == 1:
        parts = [part]
    else:
        parts = [torch.empty_like(part) for _ in range(world)] if plan.rank == 0 else None
        dist.gather(part, parts, dst=0, group=plan.group)
    if plan.rank != 0:
        return None
    full = torch.empty(*buffer.shape[:2], cursor, buffer.shape[3], dtype=buffer.dtype)
    for rank, got in enumerate(parts):
        positions = shards.positions(0, cursor, rank=rank)
        full[:, :, positions] = got[:, :, : positions.numel()].cpu()
    return full
