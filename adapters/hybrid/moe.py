"""Nemotron-H mixture of experts: sigmoid router with selection bias, squared-ReLU experts, shared expert."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superlinear.kernels.moe import grouped_expert_mlp

from .config import HybridConfig
from .mlp import ReluSquaredMLP

__all__ = ["MoE", "TopKRouter", "StackedExperts"]


class TopKRouter(nn.Module):
    """Choose `top_k` experts per token; weights are the chosen sigmoid scores (fp32)."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.top_k = cfg.num_experts_per_tok
        self.norm_topk_prob = cfg.norm_topk_prob
        self.scaling = cfg.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.hidden_size))
        self.e_score_correction_bias = nn.Parameter(torch.empty(cfg.n_routed_experts))

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Route `hidden` [T, H]; return (expert ids [T, k] long, weights [T, k] fp32)."""
        scores = F.linear(hidden.float(), self.weight.float()).sigmoid()
        # The correction bias only steers which experts are chosen, not how much they weigh.
        ids = torch.topk(scores + self.e_score_correction_bias.float(), self.top_k, dim=-1).indices
        weights = scores.gather(1, ids)
        if self.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return ids, weights * self.scaling


class StackedExperts(nn.Module):
    """All routed experts as stacked weights: up [E, I, H], down [E, H, I]."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        experts, inner, hidden = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.up_proj = nn.Parameter(torch.empty(experts, inner, hidden))
        self.down_proj = nn.Parameter(torch.empty(experts, hidden, inner))

    def forward(self, hidden: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the chosen experts' outputs; hidden [T, H], ids/weights [T, k]; fp32 [T, H].

        (token, expert) pairs are sorted by expert and each expert runs once on its tokens, reading its
        weights in place: no per-token loop and no gathered copy of expert weights. CUDA tensors take the
        grouped Triton kernels instead (no host sync, graph-capturable; only the chosen experts are read).
        """
        if hidden.is_cuda:
            return grouped_expert_mlp(hidden, self.up_proj, self.down_proj, ids, weights)
        return self.reference(hidden, ids, weights)

    def reference(self, hidden: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The PyTorch path of `forward` (one matmul pair per expert present; syncs with the host)."""
        k = ids.shape[1]
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.up_proj.shape[0]).tolist()
        token_of_pair = order // k
        pair_weight = weights.reshape(-1)[order]
        out = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        start = 0
        for expert, count in enumerate(counts):
            if count == 0:
                continue
            rows = token_of_pair[start : start + count]
            x = hidden[rows]
            y = F.linear(F.relu(F.linear(x, self.up_proj[expert])).square(), self.down_proj[expert])
            out.index_add_(0, rows, y.float() * pair_weight[start : start + count, None])
            start += count
        return out


class MoE(nn.Module):
    """Routed experts plus an always-on shared expert."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.gate = TopKRouter(cfg)
        self.experts = StackedExperts(cfg)
        self.shared_experts = ReluSquaredMLP(
            cfg.hidden_size, cfg.moe_shared_expert_intermediate_size, bias=cfg.mlp_bias
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Mix `hidden` [1, L, H] token by token; return [1, L, H]."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        ids, weights = self.gate(flat)
        routed = self.experts(flat, ids, weights).to(hidden.dtype).reshape(hidden.shape)
        return routed + self.shared_experts(hidden)
