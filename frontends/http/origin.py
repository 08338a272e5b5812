"""Refuse requests a web page could make on the user's behalf: foreign Host headers (DNS rebinding) and
foreign Origins (cross-site requests), unless the operator allowed those names.

Browsers send `Origin` on every cross-site POST and cannot forge `Host`; a page that rebinds its own
name to 127.0.0.1 still sends its own name as `Host`. Loopback names (localhost, *.localhost and
loopback addresses) are always allowed; `*` in the allow-list turns the check off.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import falcon

__all__ = ["HostGuard", "is_loopback_name", "parse_allowed_hosts", "ALLOWED_HOSTS_ENV"]

ALLOWED_HOSTS_ENV = "SPL_ALLOWED_HOSTS"
_OPEN_PATHS = frozenset({"/health"})


def is_loopback_name(host: str) -> bool:
    """Whether `host` (a name or address, no port) can only mean this machine."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    # IPv4 literals in the shorter forms that address parsers accept ("2130706433", "127.1", "0x7f.1"): a
    # literal names an address, so DNS rebinding cannot point it elsewhere.
    if not re.fullmatch(r"[0-9a-fx.]+", host):
        return False
    try:
        return ipaddress.ip_address(socket.inet_aton(host)).is_loopback
    except OSError:
        return False


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """Split a comma-separated allow-list ("example.com, 10.0.0.5, *") into lower-case names."""
    return tuple(name.strip().lower() for name in (text or "").split(",") if name.strip())


def _hostname(authority: str) -> str | None:
    try:
        return urlsplit("//" + authority).hostname
    except ValueError:
        return None


class HostGuard:
    """403 for a Host or Origin naming neither this machine nor an allowed host (`/health` stays open)."""

    def __init__(self, allowed: Iterable[str] = ()):
        self._allowed = frozenset(name.lower() for name in allowed)

    def allowed(self, host: str | None) -> bool:
        """Whether a host name (no port) may address this server."""
        if host is None:
            return False
        return "*" in self._allowed or is_loopback_name(host) or host.lower().rstrip(".") in self._allowed

    def process_request(self, req, resp):
        if req.path in _OPEN_PATHS:
            return
        host = req.get_header("Host")
        if host is not None and not self.allowed(_hostname(host)):
            raise falcon.HTTPForbidden(
                title="host_not_allowed",
                description=f"Host {host!r} is not this machine; allow it with --allow-host or ${ALLOWED_HOSTS_ENV}")
        origin = req.get_header("Origin")
        if origin is not None and not self.allowed(urlsplit(origin).hostname if "://" in origin else None):
            raise falcon.HTTPForbidden(
                title="origin_not_allowed",
                description=f"requests from web pages at {origin!r} are refused; allow the host with --allow-host "
                            f"or ${ALLOWED_HOSTS_ENV}")
