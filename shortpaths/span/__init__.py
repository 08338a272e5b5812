"""``superlinear.span``: the short import path of the published package's docstrings.

The same names as ``superlinear.kernels.superlinear.span`` (every published one among them).
"""

from superlinear.kernels.superlinear.span import *  # noqa: F403
from superlinear.kernels.superlinear.span import __all__  # noqa: F401
