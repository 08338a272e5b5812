"""The batched decode (one call for B rows, each at its own position over its own KV buffers) gives every
row exactly what the single-row Triton decode gives it alone, and stays within the decode bounds of the
reference.

Runs under the Triton CPU interpreter at tiny sizes in one subprocess (decode_rows_checks.py): rows of
different capacities and positions, a row at position 0, rows at the last slot of their buffer, GQA, a
table capacity larger than every row (as a CUDA graph's), both configurations. Two planted bugs (a
position off by one, a capacity entry one short) must be caught.
"""

from pathlib import Path

import pytest

CHECKS_PATH = Path(__file__).with_name("decode_rows_checks.py")
# The bounds of test_triton_attention.py's decode checks against the reference (max-abs, relative RMS).
BOUNDS = {"bfloat16": (6e-2, 1.2e-2), "float16": (8e-3, 2e-3)}
ROWS = dict(caps=[40, 300, 130, 64], positions=[0, 299, 77, 63])


def _case(config, q_heads, kv_heads, dim, **extra) -> dict:
    return dict(config=config, q_heads=q_heads, kv_heads=kv_heads, dim=dim, **extra)


CASES = {
    "seed, GQA 2, position 0 and last slots": _case("seed", 4, 2, 16, **ROWS),
    "seed fp16, GQA 4, D=24, graph capacity": _case(
        "seed", 4, 1, 24, caps=[256, 17, 90], positions=[200, 16, 89], dtype="float16", capacity=1024
    ),
    "released, spans beyond the window": _case(
        "released", 2, 1, 16, caps=[2300, 100, 2100], positions=[2299, 5, 2099]
    ),
    "planted: a position off by one": _case("seed", 4, 2, 16, plant="position", **ROWS),
    "planted: a capacity entry one short": _case("seed", 4, 2, 16, plant="capacity", **ROWS),
}


@pytest.fixture(scope="module")
def results(run_interpreter_cases) -> dict:
    """Every case, run in one fresh interpreter process (conftest.py); name -> result."""
    return run_interpreter_cases(CHECKS_PATH, CASES)


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("planted")])
def test_the_batched_decode_equals_each_row_alone(results, name):
    result, case = results[name], CASES[name]
    assert result["non_finite"] == 0, result
    assert result["max_abs"] == 0.0, result  # the same spans, partials and merge as the row alone
    max_abs, rel_rms = BOUNDS[case.get("dtype", "bfloat16")]
    assert result["ref_max_abs"] <= max_abs and result["ref_rel_rms"] <= rel_rms, result


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("planted")])
def test_a_planted_bug_is_caught(results, name):
    assert results[name]["max_abs"] > 1e-2, results[name]
