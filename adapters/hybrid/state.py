"""Per-sequence state of the hybrid model: growing KV caches, Mamba conv/SSM states, next-token logits."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping

import attrs
import torch

from .caches import MIN_CAPACITY as _MIN_CAPACITY
from .caches import ArraySpec, KVCache, MambaCache, cache_of
from .config import HybridConfig

__all__ = ["KVCache", "MambaCache", "HybridState", "StateCheckpoint"]
_state_ids = itertools.count(1)


LayerCache = KVCache | MambaCache | None


@attrs.frozen(eq=False)
class StateCheckpoint:
    """What `HybridState.restore` needs: the cursor, copies of the recurrent state, the logits."""

    owner: int
    cursor: int
    restore_mark: int
    recurrent: tuple[tuple[torch.Tensor, ...] | None, ...]
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
        caches = (cache_of(kind) for kind in cfg.layer_kinds)
        layers = [None if cache is None else cache.empty(cfg, device=device, dtype=dtype) for cache in caches]
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
            if cache is not None:
                tensors += cache.buffers()
        return sum(t.numel() * t.element_size() for t in tensors)

    def checkpoint(self) -> StateCheckpoint:
        """Capture cursor, recurrent state and logits; KV needs no copy because appends only write past it."""
        recurrent = tuple(None if cache is None else cache.save() for cache in self.layers)
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
            if cache is not None:
                cache.restore(saved)
        self.cursor = cp.cursor
        self.logits = None if cp.logits is None else cp.logits.clone()
        self.restores.append(cp.cursor)

    def fork(self) -> HybridState:
        """Return an independent copy; its KV buffers hold just the tokens so far (plus growth room)."""
        layers = [None if cache is None else cache.fork(self.cursor) for cache in self.layers]
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
            if cache is not None:
                for name, array in cache.export(self.cursor):
                    yield f"layers.{i}.{name}", _host_copy(array)
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
        expected = _expected_shapes(cfg, cursor, dtype)
        _check_names(arrays, expected)
        for name, spec in expected.items():
            if name in arrays and tuple(arrays[name].shape) != spec.shape:
                raise ValueError(
                    f"array {name!r} has shape {tuple(arrays[name].shape)}, expected {spec.shape}"
                )
        for i, cache in enumerate(state.layers):
            if cache is not None:
                prefix = f"layers.{i}."
                cache.load({n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)})
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


def _expected_shapes(cfg: HybridConfig, cursor: int, dtype: torch.dtype) -> dict[str, ArraySpec]:
    """Every array ``export`` yields for a state of ``cursor`` tokens, by full name."""
    specs: dict[str, ArraySpec] = {}
    for i, kind in enumerate(cfg.layer_kinds):
        cache = cache_of(kind)
        if cache is not None:
            specs |= {f"layers.{i}.{name}": spec for name, spec in cache.arrays(cfg, cursor, dtype).items()}
    if cursor:
        specs["logits"] = ArraySpec((cfg.vocab_size,), torch.float32)
    return specs


def _check_names(arrays: Mapping[str, torch.Tensor], expected: Mapping[str, ArraySpec]) -> None:
    missing = sorted(set(expected) - set(arrays) - {"logits"})
    extra = sorted(set(arrays) - set(expected) - {"cursor"})
    if missing:
        raise ValueError(f"missing arrays {missing}")
    if extra:
        raise ValueError(f"unexpected arrays {extra}")
