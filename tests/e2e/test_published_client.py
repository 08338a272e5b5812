"""The published ``spl`` client (superlinear 0.1.0 from the package index, in its own virtual environment)
drives our real server through chat, sessions, snapshots and docs, as its users would.

The client treats a loopback URL as "local" and then lists and deletes snapshots straight from disk in
its own layout, so it is pointed at the server through ``http://2130706433:PORT`` (127.0.0.1 written as
one number), which it treats as a remote server: everything then goes over HTTP. README lists that
difference. The default model has random-ish weights: the tests check the client works, not the text.
"""

import importlib.util
import json
import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _wheel_helper():
    spec = importlib.util.spec_from_file_location("published_wheel", HERE.parent / "compat" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.published_wheel


@pytest.fixture(scope="module")
def spl(server, tmp_path_factory):
    """Run the published `spl` against the test server; returns (returncode, stdout + stderr)."""
    wheel = _wheel_helper()()
    if wheel is None:
        pytest.skip("cannot download superlinear==0.1.0 from the package index")
    root = tmp_path_factory.mktemp("published")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    # The client is standard-library only; its torch/triton requirements are for its kernels and server.
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    url = server.replace("127.0.0.1", "2130706433")
    home = root / "home"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"}

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        done = subprocess.run([root / "venv" / "bin" / "spl", "--url", url, *args], input=stdin, text=True,
                              capture_output=True, env=env, timeout=600)
        return done.returncode, done.stdout + done.stderr

    return run


def _json(spl, *args):
    code, out = spl(*args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_chat_sessions_and_snapshots(spl):
    # Two turns: the client sends its default system prompt before each new message.
    code, out = spl("chat", "--new", stdin="Hello, who are you?\nAnd what can you do?\n/exit\n")
    assert code == 0 and out.count("assistant:") == 2 and "error" not in out.lower(), out
    session_id = re.search(r"session_id=(\S+) \(new\)", out).group(1)
    history = _json(spl, "session", "history", session_id)["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"], history
    info = next(s for s in _json(spl, "session", "ls")["sessions"] if s["session_id"] == session_id)
    assert info["current_pos"] > 0 and info["has_prefill"] is True and info["cache_id"] == session_id

    code, out = spl("snapshot", "save", "--session", session_id, "--title", "published-client")
    assert code == 0, out
    snapshot_id = re.search(r"saved snapshot_id=([0-9a-f]{32})\b", out).group(1)
    listed = {s["snapshot_id"]: s for s in _json(spl, "snapshot", "ls")["snapshots"]}
    assert listed[snapshot_id]["title"] == "published-client" and listed[snapshot_id]["pos"] == info["current_pos"]

    code, out = spl("snapshot", "load", snapshot_id, "--session", "chat_restored_by_published")
    assert code == 0 and "loaded snapshot_id=" in out, out
    code, out = spl("session", "info", "chat_restored_by_published")
    assert code == 0 and f"current_pos={info['current_pos']}" in out and "has_prefill=True" in out, out

    code, out = spl("rm", snapshot_id, "chat_restored_by_published", session_id)
    assert code == 0, out
    assert snapshot_id not in {s["snapshot_id"] for s in _json(spl, "snapshot", "ls")["snapshots"]}
    assert session_id not in {s["session_id"] for s in _json(spl, "session", "ls")["sessions"]}


def test_docs_ingest_save_ask_and_load_as(spl, tmp_path):
    doc = tmp_path / "vault.txt"
    doc.write_text("The vault code is 4417. The vault is in Oslo.\n")
    script = f"/add {doc}\n/save base\nWhere is the vault?\n/exit\n"
    code, out = spl("docs", "published-ws", stdin=script)
    assert code == 0 and "added files=1" in out and "finish=" in out and "error" not in out.lower(), out
    base = re.search(r"saved base_snapshot_id=([0-9a-f]{32})\b", out).group(1)
    # /load --as restores the workspace's sources from the snapshot's metadata.description.
    code, out = spl("docs", "published-ws", stdin=f"/load {base} --as published-ws2\n/sources\n/exit\n")
    assert code == 0 and "sources=1" in out and str(doc) in out, out
    spl("rm", base)
