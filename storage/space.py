"""Turn a full disk into a clear error naming the path, the space needed and the space free."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from superlinear.core.errors import InsufficientStorage

__all__ = ["check_full"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


def check_full(exc: OSError, path: Path, needed: int) -> None:
    """Raise InsufficientStorage from `exc` when it says the disk (or a quota) is full; else return."""
    if exc.errno not in _FULL:
        return
    try:
        free = f"{shutil.disk_usage(path.parent).free} bytes are free"
    except OSError:
        free = "the free space is unknown"
    raise InsufficientStorage(f"no space left on the device to write {path}: it needs {needed} bytes, {free}; "
                              "nothing was changed") from exc
