"""``superlinear.search``: the short import path of the published package's docstrings.

The same names as ``superlinear.kernels.superlinear.search`` (every published one among them).
"""

from superlinear.kernels.superlinear.search import *  # noqa: F403
from superlinear.kernels.superlinear.search import __all__  # noqa: F401
