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
from .published import (
    StripePowerParams,
    derive_stripe_power_params,
    floor_nth_root,
    max_stripe_index_for_token_pos,
    window_len_from_sw_index,
)
from .validation import AttentionShapes, validate_attention_inputs, validate_monotonic_positions

__all__ = [
    "StripePowerParams",
    "derive_stripe_power_params",
    "floor_nth_root",
    "max_stripe_index_for_token_pos",
    "window_len_from_sw_index",
    "AttentionShapes",
    "asserts_enabled",
    "ceil_scaled_power",
    "choose_implementation",
    "compute_qend_from_qanchor",
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


def __getattr__(name: str):
    # The published ``superlinear.common`` also exports compute_qend_from_qanchor, which needs the span
    # search; importing it lazily keeps common free of an import cycle with kernels.superlinear.
    if name == "compute_qend_from_qanchor":
        from ..superlinear.search.published import compute_qend_from_qanchor

        return compute_qend_from_qanchor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
