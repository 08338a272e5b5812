"""benchmarks/gpu_batch.py runs end to end in --smoke mode (CPU, tiny sizes) and records every phase;
benchmarks/gpu_batch.sh parses. The GPU numbers themselves are measured by the script, not tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_run_records_the_decode_curve_and_the_gaps(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_batch.py"), "--smoke", "--out",
                             str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "gpu_batch.json").read_text())
    assert record["errors"] == {}
    assert [row["batch"] for row in record["decode"]] == [1, 2, 4]
    assert all(row["steps"] == 3 and row["tok_s"] > 0 for row in record["decode"])
    # One recorded step set per batch size: the bucket bookkeeping ran (replayed eagerly on CPU).
    assert [row["graph_captures_total"] for row in record["decode"]] == [1, 2, 3]
    assert record["decode_eager"]["batch"] == 4 and record["decode_eager"]["n"] == 2
    gaps = record["gaps"]
    assert gaps["idle"]["n"] == 4
    for budget in (64, 32):
        run = gaps[f"budget_{budget}"]
        # Measured: the last 4 steps (--gap-window in smoke mode), the prompt before them in bulk.
        assert run["prefilled"] == 192 and "stopped_early" not in run
        assert run["measured_from"] == max(0, 192 - 4 * budget)
        # The first gap (before any prompt piece) is left out.
        assert run["n"] == (192 - run["measured_from"]) // budget - 1
    table = (tmp_path / "gpu_batch.md").read_text()
    assert "decode, batch 4" in table and "192-token prefill" in table


def test_the_device_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_batch.sh")], check=True)
