"""The flags every command that talks to a server shares, and the client they describe."""

from __future__ import annotations

import argparse
import os

from .client import Client
from .config import server_url

__all__ = ["add_connection_args", "client_from_args"]


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Add --url and --api-key (defaults: $SPL_URL or the saved URL, and $SPL_API_KEY)."""
    parser.add_argument("--url", default=None, help="server URL (default: $SPL_URL, the saved one, or "
                        "http://127.0.0.1:8787)")
    parser.add_argument("--api-key", dest="api_key", default=None,
                        help="bearer key for a server started with --api-key (default: $SPL_API_KEY)")


def client_from_args(args: argparse.Namespace, timeout: float = 30.0) -> Client:
    """Return a client for the server the flags (or environment, or saved state) name."""
    key = getattr(args, "api_key", None) or os.environ.get("SPL_API_KEY") or None
    return Client(server_url(getattr(args, "url", None)), api_key=key, timeout=timeout)
