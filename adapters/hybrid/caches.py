"""The per-sequence caches of the layer kinds that keep one: their arrays, sizes and exchange formats.

Each cache class owns everything about its cache: the named arrays it holds for a number of tokens (shape
and dtype: one table from which allocation, byte sizes and snapshot checks all come), how it exports those
arrays, loads them back, forks and saves/restores what an append overwrites. ``HybridState`` and the KV
budget go through these methods (only growing the KV buffers, ``capacity``/``reallocate``, is KV-specific),
and ``cache_of`` says which layer kind keeps which cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Protocol

import attrs
import torch

from .config import HybridConfig

__all__ = ["ArraySpec", "Cache", "KVCache", "MambaCache", "cache_nbytes", "cache_of"]

# The first allocation holds at least this many tokens, so short decodes don't reallocate per token.
MIN_CAPACITY = 256


@attrs.frozen
class ArraySpec:
    """One named array of a cache: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class Cache(Protocol):
    """What every layer cache offers (``KVCache``, ``MambaCache``)."""

    @staticmethod
    def arrays(cfg: HybridConfig, tokens: int, dtype: torch.dtype) -> dict[str, ArraySpec]:
        """The arrays (by short name) of a cache holding ``tokens`` tokens in model dtype ``dtype``."""

    @classmethod
    def empty(cls, cfg: HybridConfig, *, device: torch.device | str, dtype: torch.dtype) -> Cache:
        """The cache of a sequence holding no tokens."""

    def buffers(self) -> tuple[torch.Tensor, ...]:
        """The tensors a decode step reads and writes."""

    def export(self, cursor: int) -> Iterator[tuple[str, torch.Tensor]]:
        """Views of the arrays of ``arrays(cfg, cursor)``, by short name, in that order."""

    def load(self, arrays: Mapping[str, torch.Tensor]) -> None:
        """Write ``export``'s arrays (checked against ``arrays``) into this empty cache."""

    def fork(self, cursor: int) -> Cache:
        """An independent copy holding the first ``cursor`` tokens."""

    def save(self) -> tuple[torch.Tensor, ...] | None:
        """Copies of what later appends overwrite (None: appends only write past the cursor)."""

    def restore(self, saved: tuple[torch.Tensor, ...] | None) -> None:
        """Put back what ``save`` copied."""


def cache_of(kind: str) -> type[Cache] | None:
    """The cache class a sequence keeps for a layer of kind ``kind`` (None: the kind keeps nothing)."""
    return _KIND_CACHES.get(kind)


def cache_nbytes(cache: type[Cache], cfg: HybridConfig, tokens: int, dtype: torch.dtype) -> int:
    """The bytes of one cache of class ``cache`` holding exactly ``tokens`` tokens."""
    return sum(spec.nbytes for spec in cache.arrays(cfg, tokens, dtype).values())


def _allocate(specs: Mapping[str, ArraySpec], device: torch.device | str) -> list[torch.Tensor]:
    return [torch.zeros(spec.shape, dtype=spec.dtype, device=device) for spec in specs.values()]


@attrs.define(eq=False)
class KVCache:
    """Keys and values of one attention layer, preallocated to a capacity that grows on demand."""

    k: torch.Tensor  # [1, HKV, cap, D]
    v: torch.Tensor  # [1, HKV, cap, D]

    @staticmethod
    def arrays(cfg: HybridConfig, tokens: int, dtype: torch.dtype) -> dict[str, ArraySpec]:
        """``k`` and ``v``: [1, HKV, tokens, D] in the model dtype."""
        kv = ArraySpec((1, cfg.num_key_value_heads, tokens, cfg.head_dim), dtype)
        return {"k": kv, "v": kv}

    @classmethod
    def empty(cls, cfg: HybridConfig, *, device: torch.device | str, dtype: torch.dtype) -> KVCache:
        """A cache of capacity 0 (it grows with ``reallocate``)."""
        return cls(*_allocate(cls.arrays(cfg, 0, dtype), device))

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

    def export(self, cursor: int) -> Iterator[tuple[str, torch.Tensor]]:
        """The keys and values of the first ``cursor`` positions (views)."""
        yield "k", self.k[:, :, :cursor]
        yield "v", self.v[:, :, :cursor]

    def load(self, arrays: Mapping[str, torch.Tensor]) -> None:
        """Write exported keys and values at position 0 (the capacity must already hold them)."""
        self.write(
            0, arrays["k"].to(self.k.device, self.k.dtype), arrays["v"].to(self.v.device, self.v.dtype)
        )

    def fork(self, cursor: int) -> KVCache:
        """A copy of the first ``cursor`` positions, with room to grow (at least ``MIN_CAPACITY``)."""
        keep = min(self.capacity, max(cursor, MIN_CAPACITY))
        return KVCache(self.k[:, :, :keep].clone(), self.v[:, :, :keep].clone())

    def save(self) -> None:
        """Nothing: appends only write past the cursor, so the KV up to it stays as it was."""
        return None

    def restore(self, saved: None) -> None:
        """Nothing to put back (see ``save``)."""


@attrs.define(eq=False)
class MambaCache:
    """Recurrent state of one Mamba-2 layer."""

    conv: torch.Tensor  # [1, conv_dim, conv_kernel - 1], the last conv inputs
    ssm: torch.Tensor  # [1, nh, head_dim, N], fp32

    @staticmethod
    def arrays(cfg: HybridConfig, tokens: int, dtype: torch.dtype) -> dict[str, ArraySpec]:
        """``conv`` [1, conv_dim, conv_kernel - 1] in the model dtype, ``ssm`` [1, nh, P, N] in fp32; the
        same for any number of tokens."""
        return {
            "conv": ArraySpec((1, cfg.conv_dim, cfg.conv_kernel - 1), dtype),
            "ssm": ArraySpec((1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size), torch.float32),
        }

    @classmethod
    def empty(cls, cfg: HybridConfig, *, device: torch.device | str, dtype: torch.dtype) -> MambaCache:
        """The state before the first token: zeros."""
        return cls(*_allocate(cls.arrays(cfg, 0, dtype), device))

    def buffers(self) -> tuple[torch.Tensor, ...]:
        """The tensors a captured decode step reads and writes."""
        return (self.conv, self.ssm)

    def export(self, cursor: int) -> Iterator[tuple[str, torch.Tensor]]:
        """The conv window and the SSM state (views)."""
        yield "conv", self.conv
        yield "ssm", self.ssm

    def load(self, arrays: Mapping[str, torch.Tensor]) -> None:
        """Copy exported conv and SSM states in."""
        self.conv.copy_(arrays["conv"])
        self.ssm.copy_(arrays["ssm"])

    def fork(self, cursor: int) -> MambaCache:
        """A copy of the recurrent state."""
        return MambaCache(self.conv.clone(), self.ssm.clone())

    def save(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the conv and SSM states (every append overwrites them)."""
        return (self.conv.clone(), self.ssm.clone())

    def restore(self, saved: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Copy the saved conv and SSM states back in place (buffers a CUDA graph holds stay the same)."""
        self.conv.copy_(saved[0])
        self.ssm.copy_(saved[1])


# The layer kinds (see ``kinds``) that keep a per-sequence cache, and its class.
_KIND_CACHES: dict[str, type[Cache]] = {"*": KVCache, "M": MambaCache}
