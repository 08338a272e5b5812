"""``superlinear.attention``: the short import path of the published package's docstrings.

The same names as ``superlinear.kernels.superlinear.attention`` (every published one among them).
"""

from superlinear.kernels.superlinear.attention import *  # noqa: F403
from superlinear.kernels.superlinear.attention import __all__  # noqa: F401
