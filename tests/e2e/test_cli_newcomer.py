"""A newcomer's first hour (issue 22), through the real `spl` script in a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests


def spl(env, *args, timeout=240, stdin=None):
    return subprocess.run([sys.executable, "-m", "superlinear.frontends.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, input=stdin)


@pytest.fixture
def env(server_env, tmp_path):
    return {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "SUPERLINEAR_SNAPSHOT_DIR": str(tmp_path / "snaps")}


@pytest.fixture
def started(env, free_port):
    """`spl server start` on a free port with two torch threads; stopped afterwards."""
    port = free_port()
    result = spl(env, "server", "start", "--port", str(port), "--torch-threads", "2")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield f"http://127.0.0.1:{port}", result
    finally:
        spl(env, "server", "stop")


def test_the_engine_thread_count_is_a_flag_shown_by_health_and_status(env, started):
    url, _ = started
    assert requests.get(f"{url}/health", timeout=5).json()["torch_threads"] == 2
    status = spl(env, "server", "status")
    assert status.returncode == 0 and "torch_threads=2" in status.stdout, status.stdout
