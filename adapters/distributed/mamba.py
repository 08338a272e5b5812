"""Head-parallel Mamba-2: each rank holds a contiguous share of the SSM groups and their heads.

Heads, their channels of x, z, dt and of the gated norm, and their groups' B and C channels split
cleanly: the scan, the conv and the grouped norm never mix groups. Each rank runs the ordinary mixer on
its slice (built by ``attrs.evolve`` of the config, so every CPU and GPU path of the mixer applies) and
returns its partial ``out_proj``; the ranks' partial sums are gathered and added in rank order. The
layer's recurrent state is split the same way (``MambaSlices`` maps local channels to global ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import nn

from superlinear.kernels.superlinear.parallel import all_gather_stacked

from ..hybrid.batch import mamba_rows
from ..hybrid.config import HybridConfig
from ..hybrid.mamba import Mamba2Mixer
from ..hybrid.state import MambaCache

__all__ = ["HeadParallelMamba", "MambaSlices", "can_split_mamba", "local_mamba_config"]


def can_split_mamba(cfg: HybridConfig, world: int) -> bool:
    """Whether the SSM groups divide evenly over ``world`` ranks."""
    return world > 1 and cfg.n_groups % world == 0


def local_mamba_config(cfg: HybridConfig, world: int) -> HybridConfig:
    """The config of one rank's Mamba slice: 1/world of the heads and groups, everything else unchanged."""
    return attrs.evolve(cfg, mamba_num_heads=cfg.mamba_num_heads // world, n_groups=cfg.n_groups // world)


@attrs.frozen
class MambaSlices:
    """Global indices of one rank's slice: heads, inner channels, conv channels and in_proj rows."""

    heads: torch.Tensor
    inner: torch.Tensor
    conv: torch.Tensor
    in_rows: torch.Tensor

    @classmethod
    def of(cls, cfg: HybridConfig, rank: int, world: int) -> MambaSlices:
        """The slices of ``rank`` (its groups ``[rank * G / world, (rank + 1) * G / world)``)."""
        heads_here, groups_here = cfg.mamba_num_heads // world, cfg.n_groups // world
        inner, group_width = cfg.mamba_inner, cfg.ssm_state_size
        heads = torch.arange(rank * heads_here, (rank + 1) * heads_here)
        channels = torch.arange(
            rank * heads_here * cfg.mamba_head_dim, (rank + 1) * heads_here * cfg.mamba_head_dim
        )
        groups = torch.arange(rank * groups_here * group_width, (rank + 1) * groups_here * group_width)
        b_c = torch.cat([inner + groups, inner + cfg.n_groups * group_width + groups])
        conv = torch.cat([channels, b_c])
        in_rows = torch.cat([channels, inner + conv, inner + cfg.conv_dim + heads])
        return cls(heads, channels, conv, in_rows)


def _slice_state(mamba: Mamba2Mixer, s: MambaSlices, first_rank: bool) -> dict[str, torch.Tensor]:
    """The parameters of the local mixer, cut from the whole one."""
    out = {
        "in_proj.weight": mamba.in_proj.weight[s.in_rows],
        "conv1d.weight": mamba.conv1d.weight[s.conv],
        "A_log": mamba.A_log[s.heads],
        "D": mamba.D[s.heads],
        "dt_bias": mamba.dt_bias[s.heads],
        "norm.weight": mamba.norm.weight[s.inner],
        "out_proj.weight": mamba.out_proj.weight[:, s.inner],
    }
    if mamba.in_proj.bias is not None:
        out["in_proj.bias"] = mamba.in_proj.bias[s.in_rows]
    if mamba.conv1d.bias is not None:
        out["conv1d.bias"] = mamba.conv1d.bias[s.conv]
    if mamba.out_proj.bias is not None:
        # Added once, by rank 0.
        bias = mamba.out_proj.bias
        out["out_proj.bias"] = bias if first_rank else torch.zeros_like(bias)
    return {name: t.detach().clone() for name, t in out.items()}


class HeadParallelMamba(nn.Module):
    """One layer's Mamba-2 mixer with this rank's heads; same output on every rank."""

    def __init__(self, mamba: Mamba2Mixer, cfg: HybridConfig, rank: int, world: int, group=None):
        super().__init__()
        with torch.device("meta"):
            local = Mamba2Mixer(local_mamba_config(cfg, world))
        local.load_state_dict(_slice_state(mamba, MambaSlices.of(cfg, rank, world), rank == 0), assign=True)
        local.fused_decode = mamba.fused_decode
        self.local = local.requires_grad_(False)
        self.group = group

    def forward(self, hidden: torch.Tensor, cache: MambaCache) -> torch.Tensor:
        """Mix ``hidden`` [1, L, H] continuing this rank's part of ``cache``; return [1, L, H]."""
        return self._sum(self.local(hidden, cache))

    def rows(self, hidden: torch.Tensor, caches: Sequence[MambaCache]) -> torch.Tensor:
        """One token per row, ``hidden`` [B, 1, H] (batched decode); return [B, 1, H]."""
        return self._sum(mamba_rows(self.local, hidden, caches))

    def _sum(self, partial: torch.Tensor) -> torch.Tensor:
        return all_gather_stacked(partial.float(), self.group).sum(dim=0).to(partial.dtype)


def slice_mamba_arrays(arrays, cfg: HybridConfig, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Single-process ``export()`` arrays with each Mamba layer's conv and SSM state cut to ``rank``'s slice.

    Raises ValueError naming a Mamba array that is missing or not of the single-process shape.
    """
    s = MambaSlices.of(cfg, rank, world)
    full = {
        "conv": (1, cfg.conv_dim, cfg.conv_kernel - 1),
        "ssm": (1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size),
    }
    out = dict(arrays)
    for i, kind in enumerate(cfg.layer_kinds):
        if kind != "M":
            continue
        for part, index in (("conv", s.conv), ("ssm", s.heads)):
            name = f"layers.{i}.{part}"
            if name not in arrays:
                raise ValueError(f"missing arrays {[name]}")
            if tuple(arrays[name].shape) != full[part]:
                raise ValueError(
                    f"array {name!r} has shape {tuple(arrays[name].shape)}, expected {full[part]}"
                )
            out[name] = arrays[name][:, index].clone()
    return out


def assemble_mamba(parts: Sequence[torch.Tensor], cfg: HybridConfig, part: str) -> torch.Tensor:
    """Put every rank's local conv (``part="conv"``) or SSM state back into the single-process layout (CPU)."""
    world = len(parts)
    channels = cfg.conv_dim if part == "conv" else cfg.mamba_num_heads
    full = parts[0].new_zeros(1, channels, *parts[0].shape[2:], device="cpu")
    for rank, local in enumerate(parts):
        s = MambaSlices.of(cfg, rank, world)
        full[:, s.conv if part == "conv" else s.heads] = local.cpu()
    return full
