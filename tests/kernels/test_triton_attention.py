"""The Triton prefill and decode compute the reference's function.

On CUDA (marked ``gpu``): both configurations, chunked calls, GQA ratios, left padding, lengths that are
not multiples of the block sizes and lengths the window covers, outputs pre-filled with NaN; the span
search picks exactly the reference's slots; the decode replays under a CUDA graph. In CI (no GPU) the same
checks run at tiny sizes under the Triton CPU interpreter, in one subprocess (``TRITON_INTERPRET`` must be
set before Triton is imported). The interpreter rounds fp32 to bf16 by truncation, so bf16 bounds are a
little looser there.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

CHECKS_PATH = Path(__file__).with_name("triton_checks.py")
# (max-abs, relative RMS) per dtype: output rounding plus fp16/bf16 probabilities in the P @ V product.
BOUNDS = {"bfloat16": (6e-2, 1.2e-2), "float16": (8e-3, 2e-3)}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _case(check, config, batch, q_heads, kv_heads, length, dim, **extra) -> dict:
    return dict(
        check=check,
        config=config,
        batch=batch,
        q_heads=q_heads,
        kv_heads=kv_heads,
        length=length,
        dim=dim,
        **extra,
    )


INTERPRETER_CASES = {
    "seed chunk, GQA 2": _case("prefill", "seed", 1, 4, 2, 61, 16, q_len=13, offset=48),
    "seed fp16, padded, D=24, GQA 2": _case("prefill", "seed", 2, 2, 1, 45, 24, pad=9, dtype="float16"),
    "seed MHA": _case("prefill", "seed", 1, 2, 2, 40, 16),
    "released, spans beyond the window": _case(
        "prefill", "released", 1, 2, 1, 2100, 16, q_len=5, offset=2095
    ),
    "released, window covers all": _case("prefill", "released", 1, 2, 1, 300, 16, q_len=7, offset=200),
    "released, one query (decode kernels)": _case(
        "prefill", "released", 2, 4, 2, 2400, 16, q_len=1, offset=2399, pad=30
    ),
    "decode seed, padded": _case("decode", "seed", 2, 4, 2, 300, 16, pad=20, positions=[5, 150, 299]),
    "decode released": _case("decode", "released", 1, 2, 1, 2300, 16, positions=[100, 2299]),
    "decode seed, 64-key chunks": _case("decode", "seed", 1, 4, 2, 700, 16, positions=[650], chunk_keys=64),
    "routes seed, ties, padded": _case(
        "routes", "seed", 2, 2, 1, 120, 16, q_len=20, offset=100, pad=30, ties=True
    ),
    "routes released, ties, split": _case(
        "routes", "released", 1, 2, 1, 3000, 16, q_len=2, offset=2998, ties=True, splits=4
    ),
}

CUDA_PREFILL = {
    "released full prefill, window covers all": _case("prefill", "released", 1, 32, 2, 1000, 128),
    "released chunk at the end": _case("prefill", "released", 1, 32, 2, 5000, 128, q_len=700, offset=4300),
    "released chunk, GQA 4, padded": _case(
        "prefill", "released", 2, 8, 2, 12345, 128, q_len=1000, offset=11000, pad=777
    ),
    "released MHA fp16": _case(
        "prefill", "released", 1, 4, 4, 7001, 64, q_len=333, offset=6668, dtype="float16"
    ),
    "seed full prefill, GQA 4": _case("prefill", "seed", 1, 8, 2, 3001, 64),
    "seed chunk, D=96, GQA 3": _case("prefill", "seed", 1, 6, 2, 2500, 96, q_len=129, offset=1000),
    "seed padded, GQA 16": _case("prefill", "seed", 2, 32, 2, 1500, 128, pad=300),
    "released, one query (decode kernels)": _case(
        "prefill", "released", 1, 32, 2, 30001, 128, q_len=1, offset=30000
    ),
}
CUDA_DECODE = {
    "released": _case("decode", "released", 1, 32, 2, 20000, 128, positions=[1000, 2500, 19999]),
    "released padded": _case("decode", "released", 2, 8, 2, 9000, 128, pad=1234, positions=[3000, 8999]),
    "seed fp16": _case("decode", "seed", 1, 4, 1, 5000, 64, positions=[7, 4999], dtype="float16"),
    "released, 64-key chunks": _case(
        "decode", "released", 1, 32, 2, 20000, 128, positions=[1000, 19999], chunk_keys=64
    ),
    "released padded, 64-key chunks": _case(
        "decode", "released", 2, 8, 2, 9000, 128, pad=1234, positions=[3000, 8999], chunk_keys=64
    ),
    "seed fp16, 64-key chunks": _case(
        "decode", "seed", 1, 4, 1, 5000, 64, positions=[7, 4999], dtype="float16", chunk_keys=64
    ),
}
CUDA_ROUTES = {
    "released, ties": _case("routes", "released", 1, 32, 2, 30000, 128, q_len=300, offset=29700, ties=True),
    "released, split like decode": _case(
        "routes", "released", 1, 32, 2, 30000, 128, q_len=1, offset=29999, splits=64
    ),
    "seed, ties, padded": _case(
        "routes", "seed", 2, 8, 2, 4000, 64, q_len=500, offset=3500, pad=100, ties=True
    ),
}


def _checks():
    spec = importlib.util.spec_from_file_location("triton_checks", CHECKS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_within_bounds(result: dict, case: dict) -> None:
    max_abs, rel_rms = BOUNDS[case.get("dtype", "bfloat16")]
    assert result["non_finite"] == 0, f"{result['non_finite']} outputs left unwritten or not finite"
    assert result["max_abs"] <= max_abs and result["rel_rms"] <= rel_rms, result


@pytest.fixture(scope="module")
def interpreter_results(run_interpreter_cases) -> dict:
    """Every interpreter case, run in one fresh process (conftest.py); name -> result."""
    return run_interpreter_cases(CHECKS_PATH, INTERPRETER_CASES)


@pytest.mark.parametrize("name", list(INTERPRETER_CASES))
def test_the_kernels_match_the_reference_under_the_interpreter(interpreter_results, name):
    case, result = INTERPRETER_CASES[name], interpreter_results[name]
    if case["check"] == "routes":
        assert result["equal"] and result["valid_slots"] > 0, result
    else:
        _assert_within_bounds(result, case)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(CUDA_PREFILL))
def test_the_triton_prefill_matches_the_reference_on_cuda(name):
    _assert_within_bounds(_checks().prefill_errors(CUDA_PREFILL[name], "cuda"), CUDA_PREFILL[name])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(CUDA_DECODE))
def test_the_triton_decode_matches_the_reference_on_cuda(name):
    _assert_within_bounds(_checks().decode_errors(CUDA_DECODE[name], "cuda"), CUDA_DECODE[name])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(CUDA_ROUTES))
def test_the_triton_search_picks_exactly_the_reference_spans_on_cuda(name):
    result = _checks().routes_equal(CUDA_ROUTES[name], "cuda")
    assert result["equal"] and result["valid_slots"] > 0, result
