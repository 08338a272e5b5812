"""The batched decode (one call for B rows, each at its own position over its own KV buffers) gives every
row exactly what the single-row Triton decode gives it alone, and stays within the decode bounds of the
reference.

Runs under the Triton CPU interpreter at tiny sizes in one subprocess (decode_rows_checks.py): rows of
different capacities and positions, a row at position 0, rows at the last slot of their buffer, GQA, a
table capacity larger than every row (as a CUDA graph's), both configurations. Two planted bugs (a
position off by one, a capacity entry one short) must be caught. On CUDA (marked ``gpu``, not run here):
larger shapes, and one captured graph replayed for other rows through tables rewritten in place.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

CHECKS_PATH = Path(__file__).with_name("decode_rows_checks.py")
# The bounds of test_triton_attention.py's decode checks against the reference (max-abs, relative RMS).
BOUNDS = {"bfloat16": (6e-2, 1.2e-2), "float16": (8e-3, 2e-3)}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
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
    # One row alone: its positions reshaped to a stride-0 view the search read past (0.4-1.0 off).
    "seed, one row": _case("seed", 4, 2, 16, caps=[64], positions=[40]),
    "seed, one row with tables for a graph capacity": _case("seed", 4, 2, 16, caps=[300], positions=[255],
                                                          capacity=1024),
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


def _checks():
    spec = importlib.util.spec_from_file_location("decode_rows_checks", CHECKS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CUDA_CASES = {
    "released, GQA 16, D=128": _case(
        "released", 32, 2, 128, caps=[20000, 4096, 300, 9000], positions=[19999, 2500, 0, 8191]
    ),
    "seed fp16, GQA 4, D=64, graph capacity": _case(
        "seed", 8, 2, 64, caps=[5000, 17, 2048], positions=[4999, 16, 1000], dtype="float16", capacity=16384
    ),
}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(CUDA_CASES))
def test_the_batched_decode_equals_each_row_alone_on_cuda(name):
    result, case = _checks().rows_errors(CUDA_CASES[name], "cuda"), CUDA_CASES[name]
    assert result["non_finite"] == 0 and result["max_abs"] == 0.0, result
    max_abs, rel_rms = BOUNDS[case.get("dtype", "bfloat16")]
    assert result["ref_max_abs"] <= max_abs and result["ref_rel_rms"] <= rel_rms, result


@pytest.mark.gpu
@needs_cuda
def test_one_captured_batched_decode_serves_other_rows_through_its_tables_on_cuda(released):
    """Captured once for two rows; the offset, capacity and position tables rewritten in place for two
    other rows (other buffers, other capacities); the replay equals each new row decoded alone."""
    from superlinear.kernels import kv_rows
    from superlinear.kernels.superlinear.span.decode import triton_decode, triton_decode_rows

    params, dev, dtype = released, "cuda", torch.bfloat16
    anchors = tuple(torch.zeros(1, 2, 8, 64, dtype=dtype, device=dev) for _ in range(2))
    q1, q2 = (torch.randn(2, 8, 1, 64, device=dev, dtype=dtype) for _ in range(2))

    def rows(caps):
        return [[torch.randn(1, 2, c, 64, device=dev, dtype=dtype) for c in caps] for _ in range(2)]

    def tables(keys, values):
        caps = torch.tensor([k.shape[2] for k in keys], device=dev)
        return kv_rows.offsets(keys, base=anchors[0]), kv_rows.offsets(values, base=anchors[1]), caps

    (keys, values), (keys2, values2) = rows([3000, 500]), rows([900, 4000])
    table, where = tables(keys, values), torch.tensor([2999, 10], device=dev)
    out = triton_decode_rows(
        q1, q2, keys, values, where, params, tables=table, anchors=anchors, capacity=4096
    )
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        triton_decode_rows(
            q1, q2, keys, values, where, params, tables=table, anchors=anchors, capacity=4096, out=out
        )
    for t, new in zip(table, tables(keys2, values2), strict=True):
        t.copy_(new)
    where.copy_(torch.tensor([899, 3999]))
    graph.replay()
    for b in range(2):
        alone = triton_decode(
            q1[b : b + 1], q2[b : b + 1], keys2[b], values2[b], where[b : b + 1], None, params
        )
        assert torch.equal(out[b : b + 1], alone), b


def test_fp32_rows_take_the_per_row_reference_exactly(released, rng):
    """Inputs the Triton kernels do not take (fp32 on CPU) run the per-row decode, i.e. its reference."""
    from superlinear.kernels.superlinear.span.decode import triton_decode_rows
    from superlinear.kernels.superlinear.span.reference import decode_reference

    caps = [rng.randrange(1, 3000) for _ in range(3)] + [2100]
    positions = [rng.randrange(c) for c in caps[:3]] + [2099]
    q1, q2 = (torch.randn(4, 4, 1, 16) for _ in range(2))
    keys, values = ([torch.randn(1, 2, c, 16) for c in caps] for _ in range(2))
    out = triton_decode_rows(q1, q2, keys, values, torch.tensor(positions), released)
    for b, pos in enumerate(positions):
        at = torch.tensor([pos])
        want = decode_reference(q1[b : b + 1], q2[b : b + 1], keys[b], values[b], at, None, released)
        assert torch.equal(out[b : b + 1], want), b
