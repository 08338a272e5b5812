"""Helpers shared by the kernels: exact powers, argument validation, environment switches, dispatch."""

from .dispatch import choose_implementation
from .env import asserts_enabled
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
from .published import *  # noqa: F403 (the published stripe-power helpers, named in its __all__)
from .published import __all__ as _STRIPE_POWER_NAMES
from .validation import AttentionShapes, validate_attention_inputs, validate_monotonic_positions

__all__ = [
    *_STRIPE_POWER_NAMES,
    "AttentionShapes",
    "asserts_enabled",
    "ceil_scaled_power",
    "choose_implementation",
    "compute_qend_from_qanchor",  # noqa: F405 (lazy, see __getattr__)
    "exact_fraction",
    "floor_scaled_power",
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
