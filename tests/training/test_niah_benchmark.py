"""benchmarks/niah.py runs end to end on the shipped model and reports every trial it ran."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_niah_benchmark_runs_and_writes_one_row_per_trial(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "niah.py"), "--lengths", "512", "--depths", "2", "--trials", "1",
         "--max-new", "8", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    rows = json.loads(out.read_text())
    assert [(r["length"], r["depth"]) for r in rows] == [(512, 0.0), (512, 1.0)]
    assert all(400 <= r["tokens"] <= 512 and r["value"].isdigit() for r in rows)
    assert "| context | depth 0 | depth 1 | all | s/trial |" in done.stdout


def test_write_haystack_puts_the_needle_in_exactly_one_file(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "niah.py"), "--lengths", "2048", "--write-haystack",
         str(tmp_path / "hay")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    needle = done.stdout.split("the needle: ", 1)[1].splitlines()[0]
    files = sorted((tmp_path / "hay").iterdir())
    assert len(files) >= 2
    assert [f.name for f in files if needle in f.read_text()] != [] and sum(needle in f.read_text() for f in files) == 1
    assert "ask: What is the special magic number for " in done.stdout
