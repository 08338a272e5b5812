"""``superlinear.common``: the short import path of the published package's docstrings.

The published ``superlinear.common`` names: the stripe-power helpers and ``compute_qend_from_qanchor``.
"""

from superlinear.kernels.common import compute_qend_from_qanchor
from superlinear.kernels.common.power import *  # noqa: F403
from superlinear.kernels.common.power import __all__ as _STRIPE_POWER_NAMES

__all__ = [*_STRIPE_POWER_NAMES, "compute_qend_from_qanchor"]
