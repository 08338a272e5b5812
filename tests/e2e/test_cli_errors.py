"""Bad situations give a clear message and a non-zero exit: a stopped server, a server with an API key."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import requests

from superlinear.frontends.cli.main import main

KEY = "s3cret-key"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    monkeypatch.delenv("SPL_URL", raising=False)
    return tmp_path / "cfg" / "spl"


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args", [
    ["ls"], ["rm", "x"], ["session", "ls"], ["session", "info", "x"], ["snapshot", "ls"],
    ["snapshot", "save", "--session", "x"], ["snapshot", "load", "x"], ["snapshot", "rm", "--all", "--yes"],
    ["chat"], ["docs", "wiki"],
])
def test_every_command_says_when_the_server_is_not_running(cfg, capsys, free_port, args):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, *args, "--url", url)
    assert code == 1
    assert f"cannot reach the server at {url}" in err and "spl server start" in err


def test_the_saved_url_is_used_and_a_stopped_server_is_reported_by_the_real_script(cfg, free_port, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    env["PATH"] = f"{sys.prefix}/bin:" + env["PATH"]
    assert subprocess.run(["spl", "server", "connect", url], env=env, capture_output=True, timeout=60).returncode == 0
    result = subprocess.run(["spl", "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"cannot reach the server at {url}" in result.stderr


@pytest.fixture(scope="module")
def keyed_server(server_env, tmp_path_factory, launch_server):
    """A second server that requires an API key, with its own snapshot store."""
    home = tmp_path_factory.mktemp("keyed")
    env = {**server_env, "SUPERLINEAR_SNAPSHOT_DIR": str(home / "snapshots")}
    with launch_server(env, home / "server.log", "--threads", "4", "--no-plugins", "--api-key", KEY) as (url, _):
        yield url


def test_a_server_with_an_api_key_needs_the_key(keyed_server, cfg, capsys, monkeypatch):
    code, _, err = run(capsys, "ls", "--url", keyed_server)
    assert code == 1 and "401" in err and "pass --api-key or set SPL_API_KEY" in err
    code, _, err = run(capsys, "ls", "--url", keyed_server, "--api-key", "wrong")
    assert code == 1 and "the API key was refused" in err
    assert run(capsys, "ls", "--url", keyed_server, "--api-key", KEY)[0] == 0
    monkeypatch.setenv("SPL_API_KEY", KEY)
    assert run(capsys, "session", "ls", "--url", keyed_server)[0] == 0


def test_snapshot_rm_all_on_a_keyed_server(keyed_server, cfg, capsys, monkeypatch):
    monkeypatch.setenv("SPL_API_KEY", KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    requests.post(f"{keyed_server}/v1/sessions", json={"session_id": "k1"}, headers=headers, timeout=10)
    for title in ("a", "b"):
        requests.post(f"{keyed_server}/v1/sessions/k1/save", json={"title": title}, headers=headers, timeout=30)
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, _, err = run(capsys, "snapshot", "rm", "--all", "--url", keyed_server)
    assert code == 1 and "delete all 2 snapshots?" in err
    code, out, _ = run(capsys, "snapshot", "rm", "--all", "--yes", "--url", keyed_server)
    assert code == 0 and out.count("deleted snapshot") == 2
    assert run(capsys, "snapshot", "ls", "--url", keyed_server)[1] == "no snapshots\n"


def test_a_server_that_cannot_load_its_model_is_reported_and_stopped(server_env, tmp_path, free_port):
    env = {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    result = subprocess.run(["spl", "server", "start", "--port", str(free_port()), "--model",
                             str(tmp_path / "no-model-here")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "could not load the model" in result.stdout and "no-model-here" in result.stdout
    assert "last log lines:" in result.stdout
    assert not (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()
