"""Keep the repository root off `sys.path`, so our top-level folders cannot shadow installed packages.

`python -m pytest` puts the current directory first on `sys.path`. From the repository root that makes our
`kernels/` folder importable as a top-level `kernels` module, which hides the `kernels` package that
transformers imports. The project is imported through its installed `superlinear.*` names, so the root is
not needed; `PYTHONSAFEPATH` keeps subprocesses started by tests (`python -m ...`) from adding it back.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _is_root(entry: str) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == ROOT
    except OSError:
        return False


sys.path[:] = [entry for entry in sys.path if not _is_root(entry)]
os.environ["PYTHONSAFEPATH"] = "1"
for name in [n for n, m in sys.modules.items() if n.split(".")[0] == "kernels"]:
    module_file = getattr(sys.modules[name], "__file__", None) or ""
    if module_file.startswith(str(ROOT)):
        del sys.modules[name]
