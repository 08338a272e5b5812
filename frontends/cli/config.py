"""Client-side state under $XDG_CONFIG_HOME/spl: the server URL and the server's pid and log files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["config_dir", "server_dir", "load_client_config", "save_client_config", "server_url", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:8787"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return $XDG_CONFIG_HOME/spl, else ~/.config/spl."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "spl"


def server_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the folder of the background server's pid and log files."""
    return config_dir(environ) / "server"


def load_client_config() -> dict:
    path = config_dir() / "client.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_client_config(data: dict) -> None:
    """Write the client config atomically (temp file, fsync, rename)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".client.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / "client.json")


def server_url(explicit: str | None = None) -> str:
    """Return the server to talk to: --url, $SPL_URL, the saved one, or the default."""
    return (explicit or os.environ.get("SPL_URL") or load_client_config().get("url") or DEFAULT_URL).rstrip("/")
