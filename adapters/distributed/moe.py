"""Expert-parallel mixture of experts: each rank holds a contiguous share of the routed experts.

Hidden states are replicated, so every rank routes every token (the router is small and replicated),
runs only its own experts on the tokens routed to them, and runs its slice of the shared expert (split
along the intermediate dimension: squared ReLU acts elementwise, so the slices' outputs add up to the
whole). The ranks' fp32 partial sums are gathered and added in rank order, so every rank ends with the
same bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superlinear.kernels.moe import grouped_local_expert_mlp, supported
from superlinear.kernels.superlinear.parallel import all_gather_stacked

from ..hybrid.moe import MoE, TopKRouter

__all__ = ["ExpertParallelMoE", "share"]


def share(total: int, rank: int, world: int) -> tuple[int, int]:
    """Return ``[first, stop)`` of ``rank``'s contiguous share of ``total`` items (sizes differ by <= 1)."""
    base, extra = divmod(total, world)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)


class ExpertParallelMoE(nn.Module):
    """The MoE of one layer with this rank's experts ``[first, stop)`` and shared-expert slice."""

    def __init__(self, moe: MoE, rank: int, world: int, group=None, *, local_experts=None):
        """Take this rank's share of ``moe``; ``local_experts``: (up, down) already cut to the share (a
        sharded load reads only those; ``moe``'s own expert weights are then not read, meta is fine)."""
        super().__init__()
        self.gate: TopKRouter = moe.gate
        self.group = group
        self.first, self.stop = share(moe.experts.up_proj.shape[0], rank, world)
        if local_experts is None:
            up = moe.experts.up_proj[self.first : self.stop].clone()
            down = moe.experts.down_proj[self.first : self.stop].clone()
        else:
            up, down = local_experts
        self.up = nn.Parameter(up, requires_grad=False)
        self.down = nn.Parameter(down, requires_grad=False)
        shared = moe.shared_experts
        lo, hi = share(shared.up_proj.weight.shape[0], rank, world)
        self.shared_up = nn.Parameter(shared.up_proj.weight[lo:hi].clone(), requires_grad=False)
        self.shared_down = nn.Parameter(shared.down_proj.weight[:, lo:hi].clone(), requires_grad=False)
        self.shared_up_bias = _slice_or_none(shared.up_proj.bias, lo, hi)
        # The down projection's bias is added once, by rank 0.
        self.shared_down_bias = shared.down_proj.bias if rank == 0 else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Mix ``hidden`` [1, L, H] token by token; return [1, L, H], the same on every rank."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        ids, weights = self.gate(flat)
        partial = self._local_experts(flat, ids, weights) + self._shared_slice(flat)
        total = all_gather_stacked(partial, self.group).sum(dim=0)
        return total.to(hidden.dtype).reshape(hidden.shape)

    def _local_experts(self, flat: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The weighted outputs of this rank's experts for the (token, expert) pairs routed to them; fp32.

        CUDA (or the Triton interpreter) runs the grouped kernels over the local experts (no host sync);
        elsewhere ``reference_local_experts``."""
        if self.up.shape[0] and supported(flat):
            return grouped_local_expert_mlp(flat, self.up, self.down, ids, weights, self.first)
        return self.reference_local_experts(flat, ids, weights)

    def reference_local_experts(self, flat, ids, weights) -> torch.Tensor:
        """The PyTorch path of ``_local_experts``: one matmul pair per local expert present (host syncs)."""
        out = torch.zeros(flat.shape, dtype=torch.float32, device=flat.device)
        local = (ids >= self.first) & (ids < self.stop)
        token, slot = torch.nonzero(local, as_tuple=True)
        expert = ids[token, slot] - self.first
        order = torch.argsort(expert, stable=True)
        token, slot, expert = token[order], slot[order], expert[order]
        counts = torch.bincount(expert, minlength=self.stop - self.first).tolist()
        start = 0
        for e, count in enumerate(counts):
            if count == 0:
                continue
            rows = token[start : start + count]
            y = F.linear(F.relu(F.linear(flat[rows], self.up[e])).square(), self.down[e])
            out.index_add_(0, rows, y.float() * weights[rows, slot[start : start + count], None])
            start += count
        return out

    def _shared_slice(self, flat: torch.Tensor) -> torch.Tensor:
        inner = F.relu(F.linear(flat, self.shared_up, self.shared_up_bias)).square()
        return F.linear(inner, self.shared_down, self.shared_down_bias).float()


def _slice_or_none(bias: torch.Tensor | None, lo: int, hi: int) -> nn.Parameter | None:
    return None if bias is None else nn.Parameter(bias[lo:hi].clone(), requires_grad=False)
