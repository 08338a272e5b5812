"""Argument validation shared by every kernel: each failure is a ValueError naming the argument."""

import math
from dataclasses import dataclass

import torch

MAX_HEAD_DIM = 256
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class AttentionShapes:
    """Sizes of one attention call: Q [B, HQ, LQ, D], K/V [B, HKV, LKV, D]."""

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless ``condition`` holds; the message starts with the argument name."""
    if not condition:
        raise ValueError(message)


def require_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """Require an int (not a bool) in ``[low, high]`` (``high`` None: unbounded)."""
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    require(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an int, got {value!r}")
    require(value >= low and (high is None or value <= high), f"{name} must be {bounds}, got {value}")


def require_real(name: str, value: object, *, open_unit: bool = False) -> None:
    """Require a finite real >= 0, or one strictly inside (0, 1) when ``open_unit``."""
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    require(ok_type and math.isfinite(value), f"{name} must be a finite number, got {value!r}")
    if open_unit:
        require(0 < value < 1, f"{name} must be in (0, 1), got {value}")
    else:
        require(value >= 0, f"{name} must be >= 0, got {value}")


def validate_attention_inputs(Q1, Q2, K, V, cache_position, attention_mask) -> AttentionShapes:
    """Check the tensors of a Superlinear attention call and return their sizes.

    Q1, Q2: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; cache_position: [LQ] int in [0, LKV);
    attention_mask: None or [B, LKV].
    """
    for name, tensor in (("Q2", Q2), ("Q1", Q1), ("K", K), ("V", V)):
        require(
            isinstance(tensor, torch.Tensor), f"{name} must be a torch.Tensor, got {type(tensor).__name__}"
        )
        require(tensor.ndim == 4, f"{name} must be 4-D [B, H, L, D], got shape {tuple(tensor.shape)}")
        require(tensor.dtype in FLOAT_DTYPES, f"{name} must be a float tensor, got {tensor.dtype}")
        require(tensor.dtype == Q2.dtype, f"{name} has dtype {tensor.dtype}, Q2 has {Q2.dtype}")
        require(tensor.device == Q2.device, f"{name} is on {tensor.device}, Q2 on {Q2.device}")
    require(Q1.shape == Q2.shape, f"Q1 shape {tuple(Q1.shape)} differs from Q2 shape {tuple(Q2.shape)}")
    require(V.shape == K.shape, f"V shape {tuple(V.shape)} differs from K shape {tuple(K.shape)}")
    batch, q_heads, q_len, head_dim = Q2.shape
    _, kv_heads, kv_len, _ = K.shape
    require(K.shape[0] == batch, f"K batch size {K.shape[0]} differs from Q2 batch size {batch}")
    require(K.shape[3] == head_dim, f"K head dim {K.shape[3]} differs from Q2 head dim {head_dim}")
    require(0 < head_dim <= MAX_HEAD_DIM, f"Q2 head dim D={head_dim} is outside 1..{MAX_HEAD_DIM}")
    require(
        kv_heads > 0 and q_heads % kv_heads == 0, f"K has {kv_heads} KV heads, which must divide HQ={q_heads}"
    )
    shapes = AttentionShapes(batch, q_heads, kv_heads, q_len, kv_len, head_dim)
    _validate_cache_position(cache_position, shapes)
    _validate_attention_mask(attention_mask, shapes)
    return shapes


def _validate_cache_position(cache_position, shapes: AttentionShapes) -> None:
    require(isinstance(cache_position, torch.Tensor), "cache_position must be a torch.Tensor")
    require(
        cache_position.ndim == 1, f"cache_position must be 1-D [LQ], got shape {tuple(cache_position.shape)}"
    )
    require(
        not cache_position.dtype.is_floating_point and cache_position.dtype != torch.bool,
        f"cache_position must hold integers, got {cache_position.dtype}",
    )
    require(
        cache_position.numel() == shapes.q_len,
        f"cache_position has {cache_position.numel()} entries, queries have LQ={shapes.q_len}",
    )
    # Reading the values syncs with the host, which a CUDA graph capture forbids; a captured decode
    # replays positions that were checked when its first (eager) call ran with the same shapes.
    if cache_position.numel() and not graph_capturing(cache_position):
        low, high = int(cache_position.min()), int(cache_position.max())
        require(low >= 0, f"cache_position must be >= 0, got {low}")
        require(high < shapes.kv_len, f"cache_position {high} is beyond the keys (LKV={shapes.kv_len})")


def graph_capturing(tensor: torch.Tensor) -> bool:
    """Return whether ``tensor`` is on CUDA while a CUDA graph is being captured (no host syncs then)."""
    return tensor.is_cuda and torch.cuda.is_current_stream_capturing()


def _validate_attention_mask(attention_mask, shapes: AttentionShapes) -> None:
    if attention_mask is None:
        return
    require(isinstance(attention_mask, torch.Tensor), "attention_mask must be a torch.Tensor or None")
    expected = (shapes.batch, shapes.kv_len)
    require(
        tuple(attention_mask.shape) == expected,
        f"attention_mask must have shape [B, LKV] = {expected}, got {tuple(attention_mask.shape)}",
    )


def validate_monotonic_positions(cache_position: torch.Tensor) -> None:
    """Require strictly increasing query positions (an expensive check: a host sync on GPU)."""
    if cache_position.numel() > 1:
        steps = cache_position[1:] - cache_position[:-1]
        require(bool((steps > 0).all()), "cache_position must be strictly increasing")
