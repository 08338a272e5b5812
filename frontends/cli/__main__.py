"""`python -m superlinear.frontends.cli`: the same as the `spl` script."""

import sys

from .main import main

sys.exit(main())
