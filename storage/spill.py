"""The private directory where one server process offloads idle sessions, and the sweep of dead ones.

Offloaded sessions (their state and transcripts) live only as long as the process: the directory is
`<root>/<pid>-<random>`, mode 0700, holding a lock file the process keeps locked (flock) while it runs.
The kernel drops the lock when the process dies in any way, kill -9 included, so the next server to
start removes every directory whose lock it can take.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SpillDir", "default_spill_root", "sweep_stale_spill_dirs"]

log = logging.getLogger(__name__)

_LOCK = ".lock"


def default_spill_root(environ: Mapping[str, str]) -> Path:
    """Return `$XDG_CACHE_HOME/spl/spill`, else `~/.cache/spl/spill` (never the shared temp dir)."""
    cache = environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).is_absolute():
        return Path(cache) / "spl" / "spill"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "spl" / "spill"


def _take_lock(directory: Path) -> int | None:
    """Open and lock the directory's lock file; return the descriptor, or None if a live process holds it."""
    try:
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_stale_spill_dirs(root: Path) -> int:
    """Remove the spill directories of processes that are gone; return how many."""
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        if not entry.is_dir() or entry.is_symlink():
            continue
        fd = _take_lock(entry)
        if fd is None:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(fd)
        log.info("removed the offloaded sessions of a stopped server: %s", entry)
        removed += 1
    return removed


class SpillDir:
    """This process's spill directory: created (after a sweep) on construction, removed by `close()`."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        sweep_stale_spill_dirs(root)
        self.path = root / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir(mode=0o700)
        fd = _take_lock(self.path)
        if fd is None:
            raise RuntimeError(f"cannot lock the new spill directory {self.path}")
        self._fd: int | None = fd

    def close(self) -> None:
        """Delete the directory and everything offloaded in it."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None
