"""The spill directory: private, removed on close, and swept after its process died."""

import os
import stat
import subprocess
import sys

from superlinear.storage.spill import SpillDir, default_spill_root, sweep_stale_spill_dirs


def test_a_spill_dir_is_private_and_removed_on_close(tmp_path):
    spill = SpillDir(tmp_path / "spill")
    assert spill.path.parent == tmp_path / "spill"
    assert stat.S_IMODE(spill.path.stat().st_mode) == 0o700
    (spill.path / "sess").write_text("a transcript")
    spill.close()
    assert not spill.path.exists()


def test_dirs_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    root = tmp_path / "spill"
    live = SpillDir(root)
    # A process that made its spill dir and was killed (-9): nothing ran at exit.
    code = ("import os, sys; from pathlib import Path; from superlinear.storage.spill import SpillDir; "
            "d = SpillDir(Path(sys.argv[1])); (d.path / 'sess').write_text('x'); print(d.path, flush=True); "
            "os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=False)
    dead = out.stdout.strip()
    assert os.path.isdir(dead)
    (root / "no-lock-file").mkdir()
    second = SpillDir(root)  # a new server starting
    assert not os.path.exists(dead) and not (root / "no-lock-file").exists()
    assert live.path.is_dir() and second.path.is_dir()
    assert sweep_stale_spill_dirs(root) == 0
    live.close()
    second.close()


def test_the_spill_root_is_under_the_cache_dir_not_tmp(tmp_path):
    assert default_spill_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "spl" / "spill"
    assert default_spill_root({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "spl" / "spill"
