"""Client state: atomic writes, locked read-modify-write across processes, per-session REPL locks."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import pytest

from superlinear.frontends.cli.infra.config import (
    load_client_config,
    save_client_config,
    update_client_config,
)
from superlinear.frontends.cli.infra.jsonstore import read_json, write_json
from superlinear.frontends.cli.infra.locks import SessionLock, SessionLocked, holder_of
from superlinear.frontends.cli.infra.workspace import (
    load_workspace,
    open_workspace,
    update_workspace,
    valid_name,
)


def _bump(n: int) -> None:
    for _ in range(n):
        update_client_config(lambda s: {**s, "count": s.get("count", 0) + 1})


def test_concurrent_updates_from_several_processes_lose_nothing(config_home):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(40,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert load_client_config()["count"] == 160


def test_writes_are_atomic_and_leave_no_temp_files(config_home):
    save_client_config({"url": "http://x:1"})
    save_client_config({"last_chat_session": "s1"})
    assert load_client_config() == {"url": "http://x:1", "last_chat_session": "s1"}
    leftovers = [p.name for p in config_home.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_corrupt_state_file_reads_as_empty(config_home):
    config_home.mkdir(parents=True)
    (config_home / "client.json").write_text("{half")
    assert load_client_config() == {}
    write_json(config_home / "x.json", {"a": 1})
    assert read_json(config_home / "x.json") == {"a": 1}


def test_a_second_lock_on_a_session_is_refused_with_the_holders_pid(config_home):
    import os

    with SessionLock("s-1"):
        with pytest.raises(SessionLocked, match=f"open in another spl REPL \\(pid {os.getpid()}\\)"):
            SessionLock("s-1").acquire()
        assert holder_of("s-1") == os.getpid()
        with SessionLock("s-2"):
            pass
    assert holder_of("s-1") is None
    SessionLock("s-1").acquire().release()


def test_a_lock_held_by_another_process_is_seen_and_dies_with_it(config_home):
    code = textwrap.dedent("""
        import sys, time
        from superlinear.frontends.cli.infra.locks import SessionLock
        lock = SessionLock("shared").acquire()
        print("locked", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert holder_of("shared") == proc.pid
        with pytest.raises(SessionLocked):
            SessionLock("shared").acquire()
    finally:
        proc.kill()
        proc.wait()
    SessionLock("shared").acquire().release()


def test_workspaces_are_created_once_with_a_nonce_and_updated_under_lock(config_home):
    ws = open_workspace("wiki", nonce=lambda: "n1")
    again = open_workspace("wiki", nonce=lambda: "n2")
    assert ws.nonce == again.nonce == "n1"
    update_workspace("wiki", lambda w: setattr(w, "session_id", "docs_wiki_1"))
    assert load_workspace("wiki").session_id == "docs_wiki_1"
    assert load_workspace("missing") is None


@pytest.mark.parametrize("name", ["../x", "", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_bad_workspace_names_are_refused(name):
    assert not valid_name(name)


def test_the_config_folder_follows_xdg_config_home_else_the_platform_default(monkeypatch, tmp_path):
    from platformdirs import user_config_path

    from superlinear.frontends.cli.infra.config import client_state_path, config_dir, server_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg" / "spl" and server_dir() == tmp_path / "cfg" / "spl" / "server"
    assert client_state_path() == tmp_path / "cfg" / "spl" / "client.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # not absolute: ignored, as the XDG spec says
    assert config_dir() == user_config_path("spl", appauthor=False)
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == user_config_path("spl", appauthor=False)
    if sys.platform.startswith("linux"):
        assert config_dir() == tmp_path / "home" / ".config" / "spl"
