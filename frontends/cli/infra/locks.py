"""Per-session REPL locks: a lock file per session id, held while a REPL is attached to that session.

The lock is an `fcntl.flock` on an open file, so the kernel drops it when the REPL exits or crashes; the
pid written into the file only serves the message shown to a second REPL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from urllib.parse import quote

from .config import locks_dir

__all__ = ["SessionLocked", "SessionLock", "holder_of"]


class SessionLocked(Exception):
    """Another REPL is attached to the session."""

    def __init__(self, session_id: str, pid: int | None):
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"session {session_id} is open in another spl REPL{who}; "
                         "leave that REPL or use another session")
        self.session_id = session_id
        self.pid = pid


def _path(session_id: str) -> Path:
    return locks_dir() / f"{quote(session_id, safe='')}.lock"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


class SessionLock:
    """An exclusive, non-blocking lock on one session id for this process's REPL."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        self._file = None

    def acquire(self) -> SessionLock:
        """Take the lock or raise SessionLocked naming the holder."""
        path = _path(self.session_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise SessionLocked(self.session_id, _read_pid(path)) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Drop the lock (and its file, which nobody else holds)."""
        if self._file is None:
            return
        _path(self.session_id).unlink(missing_ok=True)
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_of(session_id: str) -> int | None:
    """Return the pid of the REPL attached to `session_id` (or -1 if unknown), or None when none is."""
    path = _path(session_id)
    if not path.exists():
        return None
    try:
        with open(path, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return None
    except BlockingIOError:
        return _read_pid(path) or -1
    except OSError:
        return None
