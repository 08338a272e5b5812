"""Re-lay a published server's snapshot cache (`cache.pt`, format `hybrid_mamba_attention_static_v1`)
as this adapter's named state arrays.

The published server saves a dict: `current_pos`, `max_seq_len`, `kv_layers` (attention layer indices),
`key_cache` / `value_cache` (layer index as a string -> [1, HKV, current_pos, D]), and the Mamba states of
all layers stacked in one tensor each, `conv_states` and `ssm_states`. Its static cache stacks either every
layer (indexed by layer number) or only the Mamba layers (in order); both are accepted, as is a conv window
of `conv_kernel` inputs (the oldest is dropped: the next step reads only the last `conv_kernel - 1`, which is
what this adapter keeps) or of `conv_kernel - 1`. Next-token logits are not saved there, so none are
produced: the state's first append computes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .caches import KVCache, MambaCache
from .config import HybridConfig
from .kinds import layers_keeping

__all__ = ["PUBLISHED_CACHE_FORMAT", "published_arrays"]

PUBLISHED_CACHE_FORMAT = "hybrid_mamba_attention_static_v1"


class _Mismatch(ValueError):
    """The published cache does not fit the loaded model; the message names what differs."""


def published_arrays(cfg: HybridConfig, payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return `HybridState.from_arrays` input (without logits) for a published cache payload.

    Raise ValueError naming the first field, layer or shape that doesn't fit the model `cfg` describes.
    """
    fmt = payload.get("cache_format")
    if fmt != PUBLISHED_CACHE_FORMAT:
        raise _Mismatch(f"cache_format is {fmt!r}, expected {PUBLISHED_CACHE_FORMAT!r}")
    pos = payload.get("current_pos")
    if type(pos) is not int or pos < 0:
        raise _Mismatch(f"current_pos must be a non-negative integer, got {pos!r}")
    arrays: dict[str, torch.Tensor] = {"cursor": torch.tensor([pos], dtype=torch.int64)}
    arrays.update(_kv_arrays(cfg, payload, pos))
    arrays.update(_mamba_arrays(cfg, payload, pos))
    return arrays


def _kv_arrays(cfg: HybridConfig, payload: Mapping[str, Any], pos: int) -> dict[str, torch.Tensor]:
    attention = layers_keeping(cfg, KVCache)
    listed = payload.get("kv_layers")
    if not isinstance(listed, list) or sorted(listed) != attention:
        raise _Mismatch(f"kv_layers is {listed!r}, but the loaded model's attention layers are {attention}")
    keys, values = payload.get("key_cache"), payload.get("value_cache")
    if not isinstance(keys, Mapping) or not isinstance(values, Mapping):
        raise _Mismatch("key_cache and value_cache must be dicts of tensors by layer index")
    shape = KVCache.arrays(cfg, pos, torch.float32)["k"].shape
    out = {}
    for i in attention:
        for name, table, ours in (("key_cache", keys, "k"), ("value_cache", values, "v")):
            out[f"layers.{i}.{ours}"] = _tensor(table.get(str(i)), f"{name}[{str(i)!r}]", shape)
    return out


def _mamba_arrays(cfg: HybridConfig, payload: Mapping[str, Any], pos: int) -> dict[str, torch.Tensor]:
    mamba = layers_keeping(cfg, MambaCache)
    if not mamba:
        return {}
    conv, ssm = payload.get("conv_states"), payload.get("ssm_states")
    for name, value in (("conv_states", conv), ("ssm_states", ssm)):
        if not isinstance(value, torch.Tensor):
            raise _Mismatch(f"{name} must be a tensor: the loaded model has {len(mamba)} Mamba layers")
    rows = _layer_rows(cfg, mamba, conv, "conv_states")
    if ssm.dim() == 0 or ssm.shape[0] != conv.shape[0]:
        raise _Mismatch(f"ssm_states stacks {ssm.shape[0] if ssm.dim() else 0} layers, conv_states {conv.shape[0]}")
    window = conv.shape[-1] if conv.dim() == 4 else -1
    if conv.dim() != 4 or conv.shape[1:3] != (1, cfg.conv_dim) or window not in (cfg.conv_kernel, cfg.conv_kernel - 1):
        raise _Mismatch(f"conv_states has shape {tuple(conv.shape)}, expected ({conv.shape[0]}, 1, {cfg.conv_dim}, "
                        f"{cfg.conv_kernel} or {cfg.conv_kernel - 1})")
    ssm_shape = (ssm.shape[0], *MambaCache.arrays(cfg, pos, torch.float32)["ssm"].shape)
    _tensor(ssm, "ssm_states", ssm_shape)
    out = {}
    for row, i in zip(rows, mamba, strict=True):
        out[f"layers.{i}.conv"] = conv[row, :, :, window - (cfg.conv_kernel - 1):].contiguous()
        out[f"layers.{i}.ssm"] = ssm[row].to(torch.float32)
    return out


def _layer_rows(cfg: HybridConfig, mamba: list[int], stacked: torch.Tensor, name: str) -> list[int]:
    """Which rows of a stacked state hold the Mamba layers: all layers stacked, or only the Mamba ones."""
    n = stacked.shape[0] if stacked.dim() else 0
    if n == len(cfg.layer_kinds):
        return mamba
    if n == len(mamba):
        return list(range(len(mamba)))
    raise _Mismatch(f"{name} stacks {n} layers; the loaded model has {len(cfg.layer_kinds)} layers, "
                    f"{len(mamba)} of them Mamba")


def _tensor(value: Any, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise _Mismatch(f"{name} is missing or not a tensor")
    if tuple(value.shape) != shape:
        raise _Mismatch(f"{name} has shape {tuple(value.shape)}, expected {shape} for the loaded model")
    if not value.is_floating_point():
        raise _Mismatch(f"{name} has dtype {value.dtype}, expected a floating-point tensor")
    return value
