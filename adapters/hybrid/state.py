"""Per-sequence state of the hybrid model: growing KV caches, Mamba conv/SSM states, next-token logits."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping

import attrs
import torch

from .config import HybridConfig

__all__ = ["KVCache", "MambaCache", "HybridState", "StateCheckpoint"]

# The first allocation holds at least this many tokens, so short decodes don't reallocate per token.
_MIN_CAPACITY = 256
_state_ids = itertools.count(1)


@attrs.define(eq=False)
class KVCache:
    """Keys and values of one attention layer, preallocated to a capacity that grows on demand."""

    k: torch.Tensor  # [1, HKV, cap, D]
    v: torch.Tensor  # [1, HKV, cap, D]

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def reallocate(self, capacity: int, keep: int) -> None:
        """Move the first `keep` positions into fresh buffers of `capacity` positions.

        The rest is zeroed: a decode step over the whole buffer (CUDA graph) masks the keys past its
        position, and a masked key must hold finite values (0 * NaN is NaN).
        """
        shape = (*self.k.shape[:2], capacity, self.k.shape[3])
        k = self.k.new_zeros(shape)
        v = self.v.new_zeros(shape)
        k[:, :, :keep].copy_(self.k[:, :, :keep])
        v[:, :, :keep].copy_(self.v[:, :, :keep])
        self.k, self.v = k, v

    def write(self, pos0: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `k`, `v` [1, HKV, L, D] at `pos0` and return views of all keys/values up to pos0 + L."""
        end = pos0 + k.shape[2]
        self.k[:, :, pos0:end].copy_(k)
        self.v[:, :, pos0:end].copy_(v)
        return self.k[:, :, :end], self.v[:, :, :end]

    def write_at(
        self, position: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one token's `k`, `v` [1, HKV, 1, D] at the device `position` [1]; return the whole buffers.

        Shapes never depend on the position, so a CUDA graph captured once replays at any position.
        """
        self.k.index_copy_(2, position, k)
        self.v.index_copy_(2, position, v)
        return self.k, self.v

    def buffers(self) -> tuple[torch.Tensor, ...]:
        """The tensors a captured decode step reads and writes."""
        return (self.k, self.v)


@attrs.define(eq=False)
class MambaCache:
    """Recurrent state of one Mamba-2 layer."""

    conv: torch.Tensor  # [1, conv_dim, conv_kernel - 1], the last conv inputs
    ssm: torch.Tensor  # [1, nh, head_dim, N], fp32

    def buffers(self) -> tuple[torch.Tensor, ...]:
        """The tensors a captured decode step reads and writes."""
        return (self.conv, self.ssm)


LayerCache = KVCache | MambaCache | None


@attrs.frozen(eq=False)
class StateCheckpoint:
    """What `HybridState.restore` needs: the cursor, copies of the recurrent state, the logits."""

    owner: int
    cursor: int
    restore_mark: int
    recurrent: tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]
    logits: torch.Tensor | None


@attrs.define(eq=False)
class HybridState:
    """One sequence: KV caches of attention layers, recurrent state of Mamba layers, the last logits.

    KV memory is proportional to the tokens held: buffers grow geometrically (2x, capped at
    `max_seq_len`) rather than being allocated for the maximum length up front.
    """

    layers: list[LayerCache]
    max_seq_len: int
    cursor: int = 0
    # [V] fp32; None while empty, or when the state was imported without them (a published server's
    # snapshot): the next append computes them, and sampling before one is refused.
    logits: torch.Tensor | None = None
    uid: int = attrs.field(factory=lambda: next(_state_ids))
    # Cursors restored to, in order; a checkpoint stays valid while no later restore went below it.
    restores: list[int] = attrs.field(factory=list)

    @classmethod
    def empty(
        cls, cfg: HybridConfig, max_seq_len: int, *, device: torch.device | str, dtype: torch.dtype
    ) -> HybridState:
        """Create a state holding no tokens; KV buffers start empty and grow with `reserve`."""
        if max_seq_len <= 0:
            raise ValueError(f"max_seq_len must be positive, got {max_seq_len}")
        layers: list[LayerCache] = []
        for kind in cfg.layer_kinds:
            if kind == "*":
                shape = (1, cfg.num_key_value_heads, 0, cfg.head_dim)
                kv = KVCache(
                    torch.empty(shape, device=device, dtype=dtype),
                    torch.empty(shape, device=device, dtype=dtype),
                )
                layers.append(kv)
            elif kind == "M":
                conv = torch.zeros(1, cfg.conv_dim, cfg.conv_kernel - 1, device=device, dtype=dtype)
                ssm_shape = (1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size)
                layers.append(MambaCache(conv, torch.zeros(ssm_shape, device=device, dtype=torch.float32)))
            else:
                layers.append(None)
        return cls(layers=layers, max_seq_len=max_seq_len)

    @property
    def capacity(self) -> int:
        """Tokens the KV buffers hold without reallocating (max_seq_len when there is no attention)."""
        caps = [c.capacity for c in self.layers if isinstance(c, KVCache)]
        return min(caps) if caps else self.max_seq_len

    def reserve(self, total: int) -> None:
        """Make room for `total` tokens, growing KV buffers 2x (at least to `total`, at most max_seq_len)."""
        if total > self.max_seq_len:
            raise ValueError(f"{total} tokens exceed the state's max_seq_len {self.max_seq_len}")
        if total <= self.capacity:
            return
        new_cap = min(self.max_seq_len, max(total, 2 * self.capacity, _MIN_CAPACITY))
        for cache in self.layers:
            if isinstance(cache, KVCache):
                cache.reallocate(new_cap, self.cursor)

    def resize(self, max_seq_len: int) -> None:
        """Change the maximum length; never below the tokens held. Shrinks buffers above the new maximum."""
        if max_seq_len < max(self.cursor, 1):
            raise ValueError(f"cannot resize to {max_seq_len}: the state holds {self.cursor} tokens")
        self.max_seq_len = max_seq_len
        for cache in self.layers:
            if isinstance(cache, KVCache) and cache.capacity > max_seq_len:
                cache.reallocate(max_seq_len, self.cursor)

    def nbytes(self) -> int:
        """Bytes held now: KV buffers at their capacity, recurrent state, logits."""
        tensors = [self.logits] if self.logits is not None else []
        for cache in self.layers:
            if isinstance(cache, KVCache):
                tensors += [cache.k, cache.v]
            elif isinstance(cache, MambaCache):
                tensors += [cache.conv, cache.ssm]
        return sum(t.numel() * t.element_size() for t in tensors)

    def checkpoint(self) -> StateCheckpoint:
        """Capture cursor, recurrent state and logits; KV needs no copy because appends only write past it."""
        recurrent = tuple(
            (c.conv.clone(), c.ssm.clone()) if isinstance(c, MambaCache) else None for c in self.layers
        )
        logits = None if self.logits is None else self.logits.clone()
        return StateCheckpoint(self.uid, self.cursor, len(self.restores), recurrent, logits)

    def restore(self, cp: StateCheckpoint) -> None:
        """Return exactly to `cp`; refuse a checkpoint of another state or one whose KV was overwritten."""
        if cp.owner != self.uid:
            raise ValueError("checkpoint was taken from another state")
        overwritten = any(c < cp.cursor for c in self.restores[cp.restore_mark :])
        if cp.cursor > self.cursor or overwritten:
            raise ValueError(
                "checkpoint is no longer valid: the state was restored to an earlier point since"
            )
        for cache, saved in zip(self.layers, cp.recurrent, strict=True):
            if isinstance(cache, MambaCache):
                cache.conv.copy_(saved[0])
                cache.ssm.copy_(saved[1])
        self.cursor = cp.cursor
        self.logits = None if cp.logits is None else cp.logits.clone()
        self.restores.append(cp.cursor)

    def fork(self) -> HybridState:
        """Return an independent copy; its KV buffers hold just the tokens so far (plus growth room)."""
        layers: list[LayerCache] = []
        for cache in self.layers:
            if isinstance(cache, KVCache):
                keep = min(cache.capacity, max(self.cursor, _MIN_CAPACITY))
                layers.append(KVCache(cache.k[:, :, :keep].clone(), cache.v[:, :, :keep].clone()))
            elif isinstance(cache, MambaCache):
                layers.append(MambaCache(cache.conv.clone(), cache.ssm.clone()))
            else:
                layers.append(None)
        logits = None if self.logits is None else self.logits.clone()
        return HybridState(layers=layers, max_seq_len=self.max_seq_len, cursor=self.cursor, logits=logits)

    def release(self) -> None:
        """Drop every tensor now; the state holds no tokens afterwards."""
        self.layers = [None] * len(self.layers)
        self.logits = None
        self.cursor = 0
        self.max_seq_len = 0

    def export(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield named CPU copies one at a time: cursor, KV sliced to the cursor, conv/SSM states, logits.

        Copies, never views: a consumer may hold them while the state moves on.
        """
        yield "cursor", torch.tensor([self.cursor], dtype=torch.int64)
        for i, cache in enumerate(self.layers):
            if isinstance(cache, KVCache):
                yield f"layers.{i}.k", _host_copy(cache.k[:, :, : self.cursor])
                yield f"layers.{i}.v", _host_copy(cache.v[:, :, : self.cursor])
            elif isinstance(cache, MambaCache):
                yield f"layers.{i}.conv", _host_copy(cache.conv)
                yield f"layers.{i}.ssm", _host_copy(cache.ssm)
        if self.logits is not None:
            yield "logits", _host_copy(self.logits)

    @classmethod
    def from_arrays(
        cls,
        cfg: HybridConfig,
        arrays: Mapping[str, torch.Tensor],
        *,
        max_seq_len: int,
        device: torch.device | str,
        dtype: torch.dtype,
        empty: Callable[..., HybridState] | None = None,
    ) -> HybridState:
        """Rebuild a state from `export()` output; raise ValueError naming a missing, extra or bad array.

        `logits` may be absent (a state imported from a published server's snapshot holds none): the state
        then has no logits until its next append. `empty(cfg, max_seq_len, device=, dtype=)` makes the state
        to fill (default `cls.empty`; a sharded model passes one whose KV caches hold its positions only).
        """
        cursor = _read_cursor(arrays)
        state = (empty or cls.empty)(cfg, max(max_seq_len, 1), device=device, dtype=dtype)
        if cursor > max_seq_len:
            raise ValueError(f"the arrays hold {cursor} tokens, more than max_seq_len {max_seq_len}")
        state.reserve(cursor)
        expected = _expected_shapes(cfg, cursor)
        _check_names(arrays, expected)
        for name, shape in expected.items():
            if name in arrays and tuple(arrays[name].shape) != shape:
                raise ValueError(f"array {name!r} has shape {tuple(arrays[name].shape)}, expected {shape}")
        for i, cache in enumerate(state.layers):
            if isinstance(cache, KVCache):
                cache.write(
                    0, arrays[f"layers.{i}.k"].to(device, dtype), arrays[f"layers.{i}.v"].to(device, dtype)
                )
            elif isinstance(cache, MambaCache):
                cache.conv.copy_(arrays[f"layers.{i}.conv"])
                cache.ssm.copy_(arrays[f"layers.{i}.ssm"])
        if cursor and "logits" in arrays:
            state.logits = arrays["logits"].to(device=device, dtype=torch.float32).clone()
        state.cursor = cursor
        return state


def _host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy that shares no memory with `tensor`."""
    return tensor.to("cpu", copy=True, memory_format=torch.contiguous_format)


def _read_cursor(arrays: Mapping[str, torch.Tensor]) -> int:
    if "cursor" not in arrays:
        raise ValueError("missing array 'cursor'")
    cursor_arr = arrays["cursor"]
    if cursor_arr.numel() != 1 or cursor_arr.dtype != torch.int64:
        raise ValueError("array 'cursor' must hold one int64")
    cursor = int(cursor_arr.reshape(()).item())
    if cursor < 0:
        raise ValueError(f"array 'cursor' is negative ({cursor})")
    return cursor


def _expected_shapes(cfg: HybridConfig, cursor: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, kind in enumerate(cfg.layer_kinds):
        if kind == "*":
            kv = (1, cfg.num_key_value_heads, cursor, cfg.head_dim)
            shapes[f"layers.{i}.k"] = shapes[f"layers.{i}.v"] = kv
        elif kind == "M":
            shapes[f"layers.{i}.conv"] = (1, cfg.conv_dim, cfg.conv_kernel - 1)
            shapes[f"layers.{i}.ssm"] = (1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size)
    if cursor:
        shapes["logits"] = (cfg.vocab_size,)
    return shapes


def _check_names(arrays: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(arrays) - {"logits"})
    extra = sorted(set(arrays) - set(expected) - {"cursor"})
    if missing:
        raise ValueError(f"missing arrays {missing}")
    if extra:
        raise ValueError(f"unexpected arrays {extra}")
