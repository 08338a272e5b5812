"""`spl ls`, `spl rm`, `spl session ...` and `spl snapshot ...` against a real server, text and --json."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import requests

from superlinear.frontends.cli.infra.locks import SessionLock
from superlinear.frontends.cli.main import main


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    return tmp_path / "cfg" / "spl"


@pytest.fixture
def spl(server, cfg, capsys, monkeypatch):
    """Run `spl` in-process against the test server; return (exit status, stdout, stderr)."""

    def run(*args, stdin: str = ""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*args, "--url", server])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def make_session(server, sid, turns=1):
    requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=10)
    for _ in range(turns):
        requests.post(f"{server}/v1/chat/completions", timeout=60, json={
            "session_id": sid, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    return sid


def test_ls_lists_sessions_and_snapshots_as_text_and_json(server, spl):
    make_session(server, "ls-one")
    snap = requests.post(f"{server}/v1/sessions/ls-one/save", json={"title": "ls snap"}, timeout=30).json()
    code, out, _ = spl("ls")
    assert code == 0 and "SESSION" in out and "ls-one" in out and snap["snapshot_id"] in out and "ls snap" in out
    code, out, _ = spl("ls", "--json")
    data = json.loads(out)
    assert "ls-one" in [s["session_id"] for s in data["sessions"]]
    assert snap["snapshot_id"] in [s["snapshot_id"] for s in data["snapshots"]]


def test_session_ls_and_info(server, spl):
    make_session(server, "info-one")
    code, out, _ = spl("session", "ls")
    assert code == 0 and "info-one" in out
    code, out, _ = spl("session", "ls", "--json")
    assert "info-one" in [s["session_id"] for s in json.loads(out)]
    code, out, _ = spl("session", "info", "info-one")
    assert code == 0 and "messages     2" in out and "tokens" in out
    with SessionLock("info-one"):
        assert "open in     REPL pid" in spl("session", "info", "info-one")[1]
    code, out, _ = spl("session", "info", "info-one", "--json")
    assert json.loads(out)["message_count"] == 2


@pytest.mark.parametrize("bad", ["no-such-session", "a/b", "../health", "sp ace"])
def test_unknown_or_malformed_ids_are_clear_errors(spl, bad):
    code, out, err = spl("session", "info", bad)
    assert code == 1 and out == ""
    assert f"no session named {bad!r}" in err or f"invalid session_id {bad!r}" in err


def test_snapshot_save_info_load_and_force(server, spl):
    make_session(server, "snap-src")
    code, out, _ = spl("snapshot", "save", "--session", "snap-src", "--title", "T1", "--tag", "x", "--json")
    snap = json.loads(out)["snapshot_id"]
    assert code == 0
    code, out, _ = spl("snapshot", "ls")
    assert snap in out and "T1" in out
    code, out, _ = spl("snapshot", "info", snap, "--json")
    assert json.loads(out)["tags"] == ["x"]
    code, out, _ = spl("snapshot", "load", snap)
    assert code == 0 and f"loaded snapshot {snap} into session" in out
    make_session(server, "snap-dst", turns=0)
    code, _, err = spl("snapshot", "load", snap, "--session", "snap-dst")
    assert code == 1 and "--force" in err
    code, out, _ = spl("snapshot", "load", snap, "--session", "snap-dst", "--force", "--json")
    assert code == 0 and json.loads(out)["session_id"] == "snap-dst"
    assert requests.get(f"{server}/v1/sessions/snap-dst", timeout=10).json()["message_count"] == 2
    assert spl("snapshot", "info", "nope")[0] == 1
    assert spl("snapshot", "save", "--session", "nope")[2].startswith("error: no session named 'nope'")
    assert spl("snapshot", "load", "nope")[0] == 1


def test_rm_asks_before_deleting_several_and_reports_unknown_ids(server, spl):
    for sid in ("rm-a", "rm-b", "rm-c"):
        make_session(server, sid, turns=0)
    code, _, err = spl("rm", "rm-a", "rm-b", stdin="n\n")
    assert code == 1 and "delete 2 items (2 sessions)?" in err and "aborted" in err
    assert requests.get(f"{server}/v1/sessions/rm-a", timeout=10).status_code == 200
    code, out, _ = spl("rm", "rm-a", "rm-b", stdin="y\n")
    assert code == 0 and "deleted session rm-a" in out and "deleted session rm-b" in out
    code, out, err = spl("rm", "rm-c", "ghost", "--json")
    data = json.loads(out)
    assert code == 1 and data["deleted"] == [{"id": "rm-c", "kind": "session"}] and data["missing"] == ["ghost"]


def test_rm_spares_a_session_open_in_a_repl_unless_forced(server, spl):
    make_session(server, "rm-open", turns=0)
    with SessionLock("rm-open"):
        code, _, err = spl("rm", "rm-open")
        assert code == 1 and "open in a REPL" in err
        assert spl("rm", "rm-open", "--force")[0] == 0


def test_snapshot_rm_deletes_snapshots_only(server, spl):
    make_session(server, "snaprm")
    snap = requests.post(f"{server}/v1/sessions/snaprm/save", json={}, timeout=30).json()["snapshot_id"]
    code, _, err = spl("snapshot", "rm", "snaprm")
    assert code == 1 and "no snapshot named 'snaprm'" in err
    assert requests.get(f"{server}/v1/sessions/snaprm", timeout=10).status_code == 200
    assert spl("snapshot", "rm", snap)[0] == 0
    assert spl("snapshot", "rm")[0] == 2


def test_the_installed_spl_script_reports_exit_codes(server, server_env, tmp_path):
    env = {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    ok = subprocess.run(["spl", "ls", "--url", server], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "SESSION" in ok.stdout
    bad = subprocess.run(["spl", "session", "info", "ghost", "--url", server], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and "no session named 'ghost'" in bad.stderr
    usage = subprocess.run(["spl", "rm"], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
