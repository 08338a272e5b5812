"""Client-side state in the user's config folder for spl (platformdirs: $XDG_CONFIG_HOME/spl, else
~/.config/spl on Linux; the platform's own place elsewhere): the server URL, the last chat session, the
folders of workspaces, REPL locks, input history and the background server's pid and log files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from platformdirs import user_config_path

from .jsonstore import read_json, update_json

__all__ = [
    "DEFAULT_URL",
    "config_dir",
    "server_dir",
    "workspaces_dir",
    "locks_dir",
    "history_dir",
    "client_state_path",
    "load_client_config",
    "save_client_config",
    "update_client_config",
    "server_url",
    "normalize_url",
]

DEFAULT_URL = "http://127.0.0.1:8787"


def config_dir() -> Path:
    """Return the folder of spl's client state: $XDG_CONFIG_HOME/spl when that names an absolute folder (on
    every platform, so a test or a user can move it), else platformdirs' user config folder for spl."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "spl"
    return user_config_path("spl", appauthor=False)


def server_dir() -> Path:
    """Return the folder of the background server's pid and log files."""
    return config_dir() / "server"


def workspaces_dir() -> Path:
    """Return the folder of the document workspaces (one JSON file each)."""
    return config_dir() / "workspaces"


def locks_dir() -> Path:
    """Return the folder of the per-session REPL lock files."""
    return config_dir() / "locks"


def history_dir() -> Path:
    """Return the folder of the REPLs' input history files."""
    return config_dir() / "history"


def client_state_path() -> Path:
    return config_dir() / "client.json"


def load_client_config() -> dict:
    """Return the client state (server URL, last chat session); {} when there is none."""
    return read_json(client_state_path())


def update_client_config(change: Callable[[dict], dict | None]) -> dict:
    """Apply `change` to the client state under its file lock, so concurrent REPLs don't lose updates."""
    return update_json(client_state_path(), change)


def save_client_config(data: dict) -> None:
    """Merge `data` into the client state (locked read-modify-write, atomic write)."""
    update_client_config(lambda current: {**current, **data})


def normalize_url(url: str) -> str:
    """Return `url` without trailing slashes, with http:// in front when it names no scheme (localhost:8787)."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def server_url(explicit: str | None = None) -> str:
    """Return the server to talk to: --url, $SPL_URL, the saved one, or the default."""
    return normalize_url(explicit or os.environ.get("SPL_URL") or load_client_config().get("url") or DEFAULT_URL)
