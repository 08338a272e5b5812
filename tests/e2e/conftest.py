"""A real spl-server (gunicorn) on a free loopback port, with its own config and snapshot dirs."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spl-server exited early:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"spl-server not ready after {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(name="free_port")
def free_port_fixture():
    """A function that returns a free loopback port."""
    return free_port


@pytest.fixture(scope="session")
def server_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ)
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               SUPERLINEAR_SNAPSHOT_DIR=str(home / "snapshots"), PYTHONUNBUFFERED="1")
    env.pop("SPL_API_KEY", None)
    # Test servers share a snapshot dir: sessions kept at their stop would show up in each other's listings.
    env["SPL_KEEP_SESSIONS"] = "0"
    # One torch thread: on a small shared CPU, more intra-op threads than free cores slow decoding 10x.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture(scope="session")
def server(server_env, tmp_path_factory):
    """Start spl-server once for the e2e tests; yield its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    cmd = [sys.executable, "-m", "superlinear.frontends.http.server", "--port", str(port), "--threads", "8",
           "--no-plugins"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=server_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def running_server(env: dict, log: Path, *flags: str):
    """Start spl-server with extra flags on a free loopback port; yield (url, process); stop it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "superlinear.frontends.http.server", "--port", str(port), *flags]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def strict_server(server_env, tmp_path_factory):
    """A server with every cap set (prompt tokens, session length, body size, KV budget); yield its URL."""
    log = tmp_path_factory.mktemp("log-strict") / "server.log"
    flags = ("--threads", "8", "--no-plugins", "--max-prompt-tokens", "400", "--max-seq-len", "2048",
             "--max-body-bytes", "64KiB", "--max-tokens", "16", "--kv-budget", "64MiB")
    with running_server(server_env, log, *flags) as (url, _proc):
        yield url


@pytest.fixture(name="launch_server", scope="session")
def launch_server_fixture():
    """The `running_server` context manager, for modules that need a server with their own flags."""
    return running_server
