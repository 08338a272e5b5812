"""The dense MLP of Nemotron-H: `down_proj(relu(up_proj(x)) ** 2)`, no gate projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReluSquaredMLP"]


class ReluSquaredMLP(nn.Module):
    """Two projections around a squared ReLU; also the MoE's shared expert."""

    def __init__(self, hidden_size: int, intermediate_size: int, *, bias: bool = False):
        super().__init__()
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Map `hidden` [..., H] to [..., H]."""
        return self.down_proj(F.relu(self.up_proj(hidden)).square())
