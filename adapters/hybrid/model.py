"""The hybrid LM: embeddings, pre-norm residual blocks with one mixer each, final norm, lm_head."""

from __future__ import annotations

import torch
from torch import nn

from superlinear.kernels import norms

from .caches import Cache
from .config import HybridConfig
from .kinds import layer_kind
from .state import HybridState

__all__ = ["HybridLM", "RMSNorm", "Block"]


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 (weight included), cast back to the input dtype."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Normalize `hidden` [..., H] over its last dimension (one Triton kernel on CUDA)."""
        if hidden.is_cuda and norms.supported(hidden):
            return norms.rms_norm(hidden, self.weight, self.eps)
        x = hidden.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * x).to(hidden.dtype)


class Block(nn.Module):
    """`x + mixer(norm(x))` with the mixer of the layer kind (M, E, *, -; see `kinds`)."""

    def __init__(self, cfg: HybridConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.spec = layer_kind(kind)
        self.norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.mixer = self.spec.build(cfg)

    def forward(self, hidden: torch.Tensor, cache: Cache | None, pos0: int | torch.Tensor) -> torch.Tensor:
        """Apply the block to `hidden` [1, L, H] at positions pos0..; updates `cache` in place.

        `pos0` may be a device tensor [1] for a one-token step (the CUDA-graph decode).
        """
        return hidden + self.spec.mix(self.mixer, self.norm(hidden), cache, pos0)


class HybridLM(nn.Module):
    """Nemotron-H style hybrid LM; parameter names match the checkpoint's minus the `backbone.` prefix."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.config = cfg
        # Passing the weight skips nn.Embedding's random init, which is slow on the meta device.
        embedding = torch.empty(cfg.vocab_size, cfg.hidden_size)
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, _weight=embedding)
        self.layers = nn.ModuleList(Block(cfg, kind) for kind in cfg.layer_kinds)
        self.norm_f = RMSNorm(cfg.hidden_size, cfg.layer_norm_epsilon)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embeddings.weight.device

    def forward(self, input_ids: torch.Tensor, state: HybridState, last_only: bool = True) -> torch.Tensor:
        """Append `input_ids` [1, L] to `state`; return fp32 logits [1, V] (last token) or [L, V].

        The state's cursor advances by L and its next-token logits become the last row.
        """
        length = input_ids.shape[1]
        pos0 = state.cursor
        state.reserve(pos0 + length)
        hidden = self.embeddings(input_ids)  # [1, L, H]
        for block, cache in zip(self.layers, state.layers, strict=True):
            hidden = block(hidden, cache, pos0)
        if last_only:
            hidden = hidden[:, -1:]
        logits = self.lm_head(self.norm_f(hidden)).float()[0]
        state.cursor = pos0 + length
        state.logits = logits[-1].clone()
        return logits

    def decode_logits(
        self, input_ids: torch.Tensor, position: torch.Tensor, state: HybridState
    ) -> torch.Tensor:
        """One token `input_ids` [1, 1] at the device `position` [1]: update the caches, return logits [1, V].

        Leaves `state.cursor` and `state.logits` alone and never syncs with the host, so it can be captured
        in a CUDA graph; the caller reserves KV room first and advances the state after.
        """
        hidden = self.embeddings(input_ids)
        for block, cache in zip(self.layers, state.layers, strict=True):
            hidden = block(hidden, cache, position)
        return self.lm_head(self.norm_f(hidden)).float()[0]
