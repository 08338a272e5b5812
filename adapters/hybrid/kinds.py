"""One spec per layer kind of the hybrid model: its mixer and the per-sequence cache it keeps.

``config.layer_kinds`` spells a model as a string of kind symbols (``M`` Mamba-2, ``*`` attention, ``E``
routed experts, ``-`` MLP). Everything that differs between kinds is here: how the mixer is built and
called, and which cache a sequence keeps for it (``caches.cache_of``, which ``HybridState`` reads
directly: the mixers' modules import the state). The block, the sequence state and the KV
budget read these specs instead of testing the symbol.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import nn

from .attention import DenseAttention, SuperlinearAttention
from .caches import Cache, cache_nbytes, cache_of
from .config import HybridConfig
from .mamba import Mamba2Mixer
from .mlp import ReluSquaredMLP
from .moe import MoE

__all__ = ["LayerKind", "KINDS", "layer_kind", "layers_keeping", "state_nbytes"]

# mixer(normed hidden [B, L, H], the layer's cache or None, first position) -> mixed hidden [B, L, H]
Mix = Callable[[nn.Module, torch.Tensor, "Cache | None", "int | torch.Tensor"], torch.Tensor]


@attrs.frozen
class LayerKind:
    """A layer kind: its symbol and name, how its mixer is built and applied, and (``cache``) the cache
    class a sequence keeps for it."""

    symbol: str
    name: str
    build: Callable[[HybridConfig], nn.Module]
    mix: Mix

    @property
    def cache(self) -> type[Cache] | None:
        """The class of the cache a sequence keeps for a layer of this kind (None: it keeps nothing)."""
        return cache_of(self.symbol)


def _attention(cfg: HybridConfig) -> nn.Module:
    return SuperlinearAttention(cfg) if cfg.is_superlinear else DenseAttention(cfg)


def _mlp(cfg: HybridConfig) -> nn.Module:
    return ReluSquaredMLP(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)


def _with_position(mixer: nn.Module, hidden: torch.Tensor, cache, pos0) -> torch.Tensor:
    return mixer(hidden, cache, pos0)


def _with_cache(mixer: nn.Module, hidden: torch.Tensor, cache, pos0) -> torch.Tensor:
    return mixer(hidden, cache)


def _stateless(mixer: nn.Module, hidden: torch.Tensor, cache, pos0) -> torch.Tensor:
    return mixer(hidden)


KINDS: dict[str, LayerKind] = {
    kind.symbol: kind
    for kind in (
        LayerKind("M", "mamba", Mamba2Mixer, _with_cache),
        LayerKind("*", "attention", _attention, _with_position),
        LayerKind("E", "moe", MoE, _stateless),
        LayerKind("-", "mlp", _mlp, _stateless),
    )
}


def layer_kind(symbol: str) -> LayerKind:
    """The spec of the layer kind spelled ``symbol``; ValueError for an unknown one."""
    try:
        return KINDS[symbol]
    except KeyError:
        raise ValueError(f"unknown layer kind {symbol!r}; known: {sorted(KINDS)}") from None


def layers_keeping(cfg: HybridConfig, cache: type[Cache]) -> list[int]:
    """The indices of the layers whose kind keeps a cache of class ``cache``, in order."""
    return [i for i, symbol in enumerate(cfg.layer_kinds) if layer_kind(symbol).cache is cache]


def state_nbytes(cfg: HybridConfig, tokens: int, dtype: torch.dtype) -> int:
    """The bytes of every layer's cache of a sequence holding exactly ``tokens`` tokens (no logits)."""
    caches = (layer_kind(symbol).cache for symbol in cfg.layer_kinds)
    return sum(cache_nbytes(cache, cfg, tokens, dtype) for cache in caches if cache is not None)
