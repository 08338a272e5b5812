"""The published package's ``superlinear.kernels.common.power`` module path: its stripe-power helpers."""

from .published import *  # noqa: F403
from .published import __all__  # noqa: F401
