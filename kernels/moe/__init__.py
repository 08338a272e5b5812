"""Mixture-of-experts kernels: grouped matrix products over (token, expert) pairs, no host sync."""

from .grouped import MoeLayout, decode_moe, grouped_expert_mlp, moe_layout, supported
from .router import route_topk

__all__ = ["MoeLayout", "decode_moe", "grouped_expert_mlp", "moe_layout", "route_topk", "supported"]
