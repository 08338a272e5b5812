"""A rank's local interval attention on the Triton decode kernels (CUDA, or the CPU interpreter).

Context-parallel attention needs, for every query and interval (window, then each span), the attention
over this rank's keys of the interval and its log-sum-exp, so that the ranks' partials merge exactly.
``span.decode.interval_partials`` gives that for one query per row; a block of queries runs as that
many rows (the keys broadcast with batch stride 0), in launches whose partial buffers stay under
``PARTIAL_BYTES``. Where Triton does not take the tensors (CPU without the interpreter, fp32, head dim
over 128, no Triton installed), ``keys_for`` returns the reference's tiles instead.
"""

import importlib
from dataclasses import dataclass

import torch

from ..span.reference import TiledKV, tile_keys_values
from .tiles import lazy_tiles

# Calls with at most this many queries gather key tiles on demand instead of copying the whole cache.
LAZY_MAX_QUERIES = 64
# The most bytes of fp32 chunk partials one launch may allocate (a prefill block runs in several).
PARTIAL_BYTES = 256 << 20


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
    """The form of this rank's keys K, V [B, HKV, L, D] that ``local_interval_attention`` reads for the
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
    """
    decode = _decode_module()
    batch, q_heads, block, dim = Q.shape
    intervals = lo.shape[-1]
    kv_heads, length = kv.keys.shape[1], kv.keys.shape[2]
    # The one host sync: the longest interval sizes the kernel's partial buffer.
    longest = int((hi - lo + 1).clamp_min(0).max()) if lo.numel() else 0
    if longest == 0:
        empty = Q.new_zeros(batch, q_heads, block, intervals, dim, dtype=torch.float32)
        return empty, torch.full_like(empty[..., 0], float("-inf"))
    chunks = (min(longest, length) + decode.CHUNK_KEYS - 1) // decode.CHUNK_KEYS + 1
    rows = max(16, triton_rows(q_heads // kv_heads * intervals))
    per_query = kv_heads * rows * chunks * (dim + 1) * 4
    step = max(1, PARTIAL_BYTES // per_query)
    out = Q.new_empty(batch, q_heads, block, intervals, dim, dtype=torch.float32)
    lse = Q.new_empty(batch, q_heads, block, intervals, dtype=torch.float32)
    for b in range(batch):
        for i in range(0, block, step):
            n = min(step, block - i)
            # Each query is one row of its own; the keys broadcast over the rows (batch stride 0).
            q = Q[b, :, i : i + n].transpose(0, 1)[:, :, None, :]
            keys = kv.keys[b : b + 1].expand(n, -1, -1, -1)
            values = kv.values[b : b + 1].expand(n, -1, -1, -1)
            rows_lo, rows_hi = lo[b, :, i : i + n].transpose(0, 1), hi[b, :, i : i + n].transpose(0, 1)
            part = decode.interval_partials(q, keys, values, rows_lo, rows_hi, max_chunks=chunks)
            out[b, :, i : i + n] = part[0].transpose(0, 1)
            lse[b, :, i : i + n] = part[1].transpose(0, 1)
    return out, lse


def triton_rows(size: int) -> int:
    """The next power of two of ``size`` (the kernel's padded row count)."""
    return 1 << max(size - 1, 0).bit_length()
