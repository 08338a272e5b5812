"""Small JSON state files: written atomically, updated under an exclusive file lock.

Two REPLs may run at once and both update client state; every read-modify-write holds an exclusive lock
(filelock's `FileLock`, an `flock` on Unix) on a sibling `.lock` file so neither loses the other's change, and every write goes to a temp file that is
fsynced and renamed so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

__all__ = ["read_json", "write_json", "update_json", "locked"]


def read_json(path: Path) -> dict:
    """Return the object stored at `path`, or {} when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s sibling lock file for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        yield


def update_json(path: Path, change: Callable[[dict], dict | None]) -> dict:
    """Read, change and write back `path` under its lock; return the new contents.

    `change` gets a copy of the current contents and returns the new ones (or mutates it and returns None).
    """
    with locked(path):
        data = read_json(path)
        new = change(data)
        data = data if new is None else new
        write_json(path, data)
        return data
