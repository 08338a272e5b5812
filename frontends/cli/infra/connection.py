"""The flags every command that talks to a server shares, and the client they describe."""

from __future__ import annotations

import argparse
import os

from .client import Client
from .config import server_url

__all__ = ["add_connection_args", "client_from_args", "default_timeout"]


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Add --url and --api-key (defaults: $SPL_URL or the saved URL, and $SPL_API_KEY)."""
    parser.add_argument("--url", default=None, help="server URL (default: $SPL_URL, the saved one, or "
                        "http://127.0.0.1:8787)")
    parser.add_argument("--api-key", dest="api_key", default=None,
                        help="bearer key for a server started with --api-key (default: $SPL_API_KEY)")


def default_timeout() -> float:
    """Seconds to wait for an answer: $SPL_TIMEOUT, else 30."""
    try:
        return max(0.1, float(os.environ.get("SPL_TIMEOUT") or 30.0))
    except ValueError:
        return 30.0


def client_from_args(args: argparse.Namespace, timeout: float | None = None) -> Client:
    """Return a client for the server the flags (or environment, or saved state) name."""
    key = getattr(args, "api_key", None) or os.environ.get("SPL_API_KEY") or None
    wait = max(timeout, default_timeout()) if timeout else default_timeout()
    return Client(server_url(getattr(args, "url", None)), api_key=key, timeout=wait)
