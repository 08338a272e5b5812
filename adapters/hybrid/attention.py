"""Attention mixers without positional encoding: dense GQA (nemotron_h) and Superlinear (superlinear-exp)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superlinear.kernels import SuperlinearParams, superlinear_attention, superlinear_attention_trainable

from .config import HybridConfig
from .state import KVCache

__all__ = ["DenseAttention", "SuperlinearAttention", "dense_causal_attention"]

# Queries per SDPA call in dense prefill: bounds the [rows, keys] mask and score memory on CPU.
_QUERY_BLOCK = 1024


class DenseAttention(nn.Module):
    """GQA attention over the cached keys, scale head_dim ** -0.5, no RoPE."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, q_size, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, kv_size, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, kv_size, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(q_size, cfg.hidden_size, bias=cfg.attention_bias)

    def forward(self, hidden: torch.Tensor, cache: KVCache, pos0: int | torch.Tensor) -> torch.Tensor:
        """Attend from `hidden` [1, L, H] at positions pos0.. over cache + these tokens; return [1, L, H].

        `pos0` as a device tensor [1] (one token, CUDA-graph decode): keys past it are masked out.
        """
        keys, values = self._store_kv(hidden, cache, pos0)
        q = self._heads(self.q_proj(hidden), self.num_heads)
        if isinstance(pos0, torch.Tensor):
            visible = (torch.arange(keys.shape[2], device=q.device) <= pos0)[None, :]  # [1, T]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, enable_gqa=True)
        else:
            out = dense_causal_attention(q, keys, values, pos0)
        return self._merge(out)

    def _store_kv(
        self, hidden: torch.Tensor, cache: KVCache, pos0: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self._heads(self.k_proj(hidden), self.num_kv_heads)
        v = self._heads(self.v_proj(hidden), self.num_kv_heads)
        if isinstance(pos0, torch.Tensor):
            return cache.write_at(pos0, k, v)
        return cache.write(pos0, k, v)

    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        """[1, L, heads * D] -> [1, heads, L, D]."""
        return x.view(1, x.shape[1], heads, self.head_dim).transpose(1, 2)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        """[1, HQ, L, D] -> output projection of [1, L, HQ * D]."""
        return self.o_proj(out.transpose(1, 2).reshape(1, out.shape[2], -1))


class SuperlinearAttention(DenseAttention):
    """Superlinear attention: Q1 (`q1_proj`) routes the search, Q2 (`q_proj`) attends; K/V are shared."""

    def __init__(self, cfg: HybridConfig):
        super().__init__(cfg)
        if cfg.superlinear is None:
            raise ValueError("SuperlinearAttention needs a config with span_attention_* parameters")
        self.params: SuperlinearParams = cfg.superlinear
        # Queries per block of the attention call (None: the kernel's default). Training raises it: fewer,
        # larger blocks cost more memory and far fewer kernel launches.
        self.block_q: int | None = None
        # Training sets this to run the differentiable Triton kernels (docs/attention-backward.md) instead
        # of autograd through the reference: on CUDA in bf16 (fp32 weights and outputs around it).
        self.triton_training: bool = False
        self.q1_proj = nn.Linear(cfg.hidden_size, self.num_heads * self.head_dim, bias=cfg.attention_bias)

    def forward(self, hidden: torch.Tensor, cache: KVCache, pos0: int | torch.Tensor) -> torch.Tensor:
        """Attend from `hidden` [1, L, H] at pos0.. with Superlinear attention; return [1, L, H].

        `pos0` as a device tensor [1] (one token, CUDA-graph decode): the kernel reads the position on
        the device and never looks past it, so the whole cache buffer is passed.
        """
        keys, values = self._store_kv(hidden, cache, pos0)
        q1 = self._heads(self.q1_proj(hidden), self.num_heads)
        q2 = self._heads(self.q_proj(hidden), self.num_heads)
        if isinstance(pos0, torch.Tensor):
            positions = pos0
        else:
            positions = torch.arange(pos0, pos0 + hidden.shape[1], device=hidden.device)
        if self.triton_training and not isinstance(pos0, torch.Tensor):
            return self._merge(self._trainable(q1, q2, keys, values, positions))
        out = superlinear_attention(q1, q2, keys, values, positions, params=self.params, block_q=self.block_q)
        return self._merge(out)

    def _trainable(self, q1, q2, keys, values, positions) -> torch.Tensor:
        """The differentiable Triton attention; fp32 tensors on CUDA go through bf16 (its kernels' dtype)."""
        dtype = q2.dtype
        low = torch.bfloat16 if q2.is_cuda and dtype == torch.float32 else dtype
        q1, q2, keys, values = (x.to(low) for x in (q1, q2, keys, values))
        return superlinear_attention_trainable(q1, q2, keys, values, positions, params=self.params).to(dtype)


def dense_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos0: int) -> torch.Tensor:
    """Causal GQA attention of queries at positions pos0.. over all keys 0..T-1.

    q [1, HQ, L, D], k and v [1, HKV, T, D] with T = pos0 + L; returns [1, HQ, L, D].
    """
    length, total = q.shape[2], k.shape[2]
    if length == 1:
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    if pos0 == 0 and length <= _QUERY_BLOCK:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    # SDPA's is_causal aligns the mask top-left, which is wrong for a chunk at an offset, so pass an
    # explicit lower-right mask, a block of queries at a time to bound its size.
    outs = []
    keys = torch.arange(total, device=q.device)
    for start in range(0, length, _QUERY_BLOCK):
        stop = min(length, start + _QUERY_BLOCK)
        rows = torch.arange(pos0 + start, pos0 + stop, device=q.device)
        mask = keys[None, :] <= rows[:, None]  # [rows, T]
        # Keys past the block's last query are masked anyway; leave them out of the call.
        end = pos0 + stop
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, start:stop], k[:, :, :end], v[:, :, :end], attn_mask=mask[:, :end], enable_gqa=True
            )
        )
    return torch.cat(outs, dim=2)
