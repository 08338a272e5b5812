"""Mixture-of-experts kernels: grouped matrix products over (token, expert) pairs, no host sync."""

from .grouped import MoeLayout, grouped_expert_mlp, grouped_local_expert_mlp, moe_layout, supported

__all__ = ["MoeLayout", "grouped_expert_mlp", "grouped_local_expert_mlp", "moe_layout", "supported"]
