"""Shard a loaded hybrid model over the ranks of a process group, and make states for it.

Attention layers become context parallel (each rank keeps the KV of its positions), MoE layers expert
parallel (each rank keeps its share of the experts), Mamba-2 layers head parallel when their SSM groups
divide evenly (each rank keeps its groups of heads and their recurrent state). Embeddings, norms, dense
MLPs and the LM head stay replicated: every rank computes every token's hidden state, so each rank returns
the same logits and any rank can sample. ``HybridLM.forward`` and ``HybridState`` work unchanged on the result.
"""

from __future__ import annotations

from ..hybrid.attention import DenseAttention
from ..hybrid.mamba import Mamba2Mixer
from ..hybrid.model import HybridLM
from ..hybrid.moe import MoE
from .attention import ContextParallelAttention
from .mamba import HeadParallelMamba
from .moe import ExpertParallelMoE
from .plan import ShardPlan
from .state import ShardedState

__all__ = ["ShardPlan", "shard_block", "shard_model", "sharded_state"]


def shard_model(model: HybridLM, plan: ShardPlan) -> HybridLM:
    """Swap ``model``'s attention and MoE mixers for their parallel forms in place; return ``model``.

    The full expert weights are dropped once this rank's share is copied out.
    """
    for block in model.layers:
        shard_block(block, model.config, plan)
    model.shard_plan = plan
    return model


def shard_block(block, cfg, plan: ShardPlan, **moe_options) -> None:
    """Swap one layer's mixer for its parallel form in place (``moe_options``: ``ExpertParallelMoE``'s)."""
    if isinstance(block.mixer, DenseAttention):
        block.mixer = ContextParallelAttention(block.mixer, plan.group)
    elif isinstance(block.mixer, MoE):
        block.mixer = ExpertParallelMoE(block.mixer, plan.rank, plan.world, plan.group, **moe_options)
    elif isinstance(block.mixer, Mamba2Mixer) and plan.splits_mamba(cfg):
        block.mixer = HeadParallelMamba(block.mixer, cfg, plan.rank, plan.world, plan.group)


def sharded_state(model: HybridLM, max_seq_len: int) -> ShardedState:
    """Return an empty state for a model sharded by ``shard_model``: its KV caches hold this rank's part."""
    return ShardedState.empty_sharded(
        model.config, max_seq_len, model.shard_plan, device=model.device, dtype=model.dtype
    )


def is_sharded(model: HybridLM) -> bool:
    """Whether ``shard_model`` has sharded ``model``."""
    return getattr(model, "shard_plan", None) is not None


def model_bytes(model: HybridLM) -> int:
    """Bytes of this rank's parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters())
