"""Who holds a TCP port: checked before `spl server start` spawns anything, so a conflict is named at once."""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

import attrs

__all__ = ["PortHolder", "port_in_use", "listening_pid", "describe_holder"]


@attrs.frozen
class PortHolder:
    """The process listening on a port, as far as this user can see it."""

    pid: int | None
    command: str | None


def port_in_use(host: str, port: int) -> bool:
    """Return whether binding `host:port` fails because something already holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address is ADDR:PORT in hex; state 0A is LISTEN
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def listening_pid(port: int) -> PortHolder:
    """Find the process listening on `port` through /proc (Linux; only this user's processes are visible)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders = []
    for proc in Path("/proc").iterdir() if targets else ():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and any(str(fd.readlink()) in targets for fd in (proc / "fd").iterdir()):
                holders.append(int(proc.name))
    if not holders:
        return PortHolder(None, None)
    pid = min(holders)  # a pre-forking server's workers share the socket: name the parent (the oldest)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = None
    return PortHolder(pid, command)


def describe_holder(holder: PortHolder) -> str:
    """Render a holder as `pid 123: python -m ...`, or say that it is not visible."""
    if holder.pid is None:
        return "a process this user cannot see"
    command = holder.command or "?"
    return f"pid {holder.pid}: {command[:120]}"
