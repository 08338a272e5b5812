"""Load only this rank's share of a checkpoint: peak memory per rank about its share, not the model.

The checkpoint is first checked exactly as the single-process loader checks it (``hybrid.loader``'s
collector, fed shapes only: nothing is read), and every on-disk tensor is mapped to its internal name by
the same rule table. Then the model is built on the meta device and filled layer by layer: replicated
tensors are read whole, a MoE layer reads only this rank's experts (``get_slice`` of a stacked tensor, or
just the rank's per-expert tensors), and each layer is sharded (``model.shard_block``) as soon as it is
filled, so a head-parallel Mamba layer's full weights live only while its slice is cut. The result
equals loading the whole checkpoint and calling ``shard_model``.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import safe_open

from ..hybrid.config import HybridConfig
from ..hybrid.loader import DEFAULT_Q1_ALIASES, NAME_PREFIXES, Collector, name_rules, param_dtype, shard_files
from ..hybrid.model import HybridLM
from ..hybrid.moe import MoE
from .model import shard_block
from .moe import share
from .plan import ShardPlan

__all__ = ["load_sharded_model"]


@attrs.frozen
class _Source:
    """Where an internal tensor lives: (handle, key) of a whole tensor, or per expert for stacked ones."""

    whole: tuple[Any, str] | None = None
    experts: dict[int, tuple[Any, str]] = attrs.field(factory=dict)


def load_sharded_model(
    model_dir: str | Path,
    cfg: HybridConfig,
    plan: ShardPlan,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    q1_aliases=DEFAULT_Q1_ALIASES,
) -> HybridLM:
    """Build ``plan``'s shard of the model in ``model_dir`` on ``device``; raise CheckpointError as
    ``hybrid.loader.load_model`` does."""
    with torch.device("meta"):
        model = HybridLM(cfg)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    device = torch.device(device)
    with ExitStack() as files:
        handles = [
            files.enter_context(safe_open(str(f), framework="pt", device="cpu"))
            for f in shard_files(model_dir)
        ]
        sources = _map_sources(handles, cfg, expected, dtype, q1_aliases)

        def read(name: str) -> torch.Tensor:
            handle, key = sources[name].whole
            tensor = handle.get_tensor(key)
            return tensor.to(device=device, dtype=param_dtype(name, dtype)).contiguous()

        model.load_state_dict(
            {n: read(n) for n in expected if not n.startswith("layers.")}, strict=False, assign=True
        )
        for i, block in enumerate(model.layers):
            prefix = f"layers.{i}."
            names = [n for n in expected if n.startswith(prefix)]
            options = {}
            if isinstance(block.mixer, MoE):
                experts = [prefix + f"mixer.experts.{p}_proj" for p in ("up", "down")]
                names = [n for n in names if n not in experts]
                first, stop = share(expected[experts[0]][0], plan.rank, plan.world)
                read_share = _expert_reader(sources, dtype, device)
                options["local_experts"] = tuple(read_share(n, first, stop) for n in experts)
            block.load_state_dict({n[len(prefix) :]: read(n) for n in names}, strict=False, assign=True)
            shard_block(block, cfg, plan, **options)
    model.shard_plan = plan
    return model.eval().requires_grad_(False)


def _expert_reader(sources: dict[str, _Source], dtype: torch.dtype, device: torch.device):
    """``read(name, first, stop)``: experts ``[first, stop)`` of a stacked tensor, reading no other."""

    def read(name: str, first: int, stop: int) -> torch.Tensor:
        source = sources[name]
        if source.whole is not None:
            handle, key = source.whole
            part = handle.get_slice(key)[first:stop]
        else:
            part = torch.stack(
                [source.experts[e][0].get_tensor(source.experts[e][1]) for e in range(first, stop)]
            )
        return part.to(device=device, dtype=param_dtype(name, dtype)).contiguous()

    return read


def _map_sources(handles, cfg, expected, dtype, q1_aliases) -> dict[str, _Source]:
    """Check the checkpoint as the single-process loader does (shapes only); map internal names to sources."""
    collector = Collector(cfg, expected, dtype, torch.device("meta"), name_rules(q1_aliases))
    rules = name_rules(q1_aliases)
    sources: dict[str, _Source] = {}
    for handle in handles:
        shapes = _ShapesOnly(handle)
        for key in handle.keys():
            collector.add(key, shapes)
            name = next((key[len(p) :] for p in NAME_PREFIXES if key.startswith(p)), key)
            rule, match = next((r, m) for r in rules if (m := r.pattern.fullmatch(name)))
            if rule.action == "ignore":
                continue
            target = rule.target.format(*match.groups()) if match.groups() else name
            if rule.action == "expert":
                sources.setdefault(target, _Source()).experts[int(match.group(2))] = (handle, key)
            else:
                sources[target] = _Source(whole=(handle, key))
    collector.finish(q1_aliases)  # raises CheckpointError on any mismatch, like load_model
    return sources


@attrs.frozen
class _ShapesOnly:
    """A shard handle for the collector's checks: shapes from the header, data never read (meta)."""

    handle: Any

    def get_slice(self, key: str):
        return self.handle.get_slice(key)

    def get_tensor(self, key: str) -> torch.Tensor:
        return torch.empty(self.handle.get_slice(key).get_shape(), device="meta")
