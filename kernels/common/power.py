"""The published package's ``superlinear.kernels.common.power`` module path: its stripe-power helpers."""

from .published import (
    StripePowerParams,
    derive_stripe_power_params,
    floor_nth_root,
    max_stripe_index_for_token_pos,
    window_len_from_sw_index,
)

__all__ = [
    "StripePowerParams",
    "derive_stripe_power_params",
    "floor_nth_root",
    "max_stripe_index_for_token_pos",
    "window_len_from_sw_index",
]
