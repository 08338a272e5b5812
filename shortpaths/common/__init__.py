"""``superlinear.common``: the short import path of the published package's docstrings.

The published ``superlinear.common`` names: the stripe-power helpers and ``compute_qend_from_qanchor``.
"""

from superlinear.kernels.common import (
    StripePowerParams,
    compute_qend_from_qanchor,
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
    "compute_qend_from_qanchor",
]
