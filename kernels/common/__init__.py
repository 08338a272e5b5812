"""Helpers shared by the kernels: exact powers, argument validation, environment switches, dispatch."""

from .dispatch import choose_implementation
from .env import asserts_enabled, force_sparse_meta
from .powers import (
    ceil_scaled_power,
    exact_fraction,
    floor_scaled_power,
    stripe_count,
    stripe_exponent,
    stripe_offset,
    stripe_offsets,
    window_size,
)
from .validation import AttentionShapes, validate_attention_inputs, validate_monotonic_positions

__all__ = [
    "AttentionShapes",
    "asserts_enabled",
    "ceil_scaled_power",
    "choose_implementation",
    "exact_fraction",
    "floor_scaled_power",
    "force_sparse_meta",
    "stripe_count",
    "stripe_exponent",
    "stripe_offset",
    "stripe_offsets",
    "validate_attention_inputs",
    "validate_monotonic_positions",
    "window_size",
]
