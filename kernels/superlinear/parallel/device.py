"""A rank's local interval attention on the Triton decode kernels (CUDA, or the CPU interpreter).

Context-parallel attention needs, for every query and interval (window, then each span), the attention
over this rank's keys of the interval and its log-sum-exp, so that the ranks' partials merge exactly.
``span.decode.interval_partials`` gives that for one query (decode), its chunks split over many
programs; a block of queries runs ``rows.block_interval_attention``, one program per query and KV
group. Where Triton does not take the tensors (CPU without the interpreter, fp32, head dim over 128,
no Triton installed), ``keys_for`` returns the reference's tiles instead.
"""

import importlib
from dataclasses import dataclass

import torch

from ..span.reference import TiledKV, tile_keys_values
from .tiles import lazy_tiles

# Calls with at most this many queries gather key tiles on demand instead of copying the whole cache.
LAZY_MAX_QUERIES = 64


@dataclass(frozen=True)
class DeviceKV:
    """This rank's keys and values [B, HKV, L, D] (L > 0) for the Triton interval kernels."""

    keys: torch.Tensor
    values: torch.Tensor


def _decode_module():
    """The Triton decode module, or None where Triton is not installed."""
    try:
        return importlib.import_module("..span.decode", __package__)
    except ImportError:
        return None


def keys_for(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> DeviceKV | TiledKV:
    """The form of this rank's keys K, V [B, HKV, L, D] that ``attention.local_partials`` reads for the
    queries Q [B, HQ, LQ, D]: ``DeviceKV`` where the Triton kernels take them, else reference tiles."""
    decode = _decode_module() if K.shape[2] else None
    if decode is not None and decode.supports(Q, K):
        return DeviceKV(K, V)
    if Q.shape[2] <= LAZY_MAX_QUERIES and K.shape[2]:
        return lazy_tiles(K, V)
    return tile_keys_values(K, V)


def device_interval_attention(Q: torch.Tensor, kv: DeviceKV, lo: torch.Tensor, hi: torch.Tensor):
    """Attention of every query over its local key intervals, on the Triton kernels.

    Q [B, HQ, BLK, D] (unscaled); lo, hi [B, HQ, BLK, I] inclusive local key indices (``lo > hi``:
    empty). Returns out [B, HQ, BLK, I, D] fp32 and the natural lse [B, HQ, BLK, I] (-inf when empty).
    A block of queries runs ``rows.block_interval_attention`` (a program per query and KV group, online
    softmax, no host sync); one query (decode) the decode kernels, whose programs split its chunks.
    """
    if Q.shape[2] > 1:
        from .rows import block_interval_attention

        return block_interval_attention(Q, kv.keys, kv.values, lo, hi)
    decode = _decode_module()
    # The one host sync of a decode call: the longest interval sizes the kernel's partial buffer.
    longest = int((hi - lo + 1).clamp_min(0).max()) if lo.numel() else 0
    chunks = (min(longest, kv.keys.shape[2]) + decode.CHUNK_KEYS - 1) // decode.CHUNK_KEYS + 1
    out, lse = decode.interval_partials(
        Q, kv.keys, kv.values, lo[:, :, 0], hi[:, :, 0], max_chunks=chunks if longest else 0
    )
    return out[:, :, None], lse[:, :, None]
