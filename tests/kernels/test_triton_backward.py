"""The Triton backward of the prefill gives the reference's gradients (docs/attention-backward.md).

``superlinear_attention_trainable`` (Triton forward that keeps its statistics, Triton backward) is
compared with autograd through the PyTorch reference in float64 on the same inputs: the output and the
gradients of Q1, Q2, K and V. In CI the cases run at tiny sizes under the Triton CPU interpreter in one
subprocess: fp32 within tight bounds, fp16 and bf16 within the bounds of their rounding, and a
one-direction gradcheck (``<grad, u>`` against a float64 central difference of the reference). On CUDA
(marked ``gpu``) larger bf16/fp16 cases with the shapes of the released model.

Why not ``torch.autograd.gradcheck`` on the Triton path: the kernels compute their dot products in fp32
under the interpreter (``search.prefill._dot`` upcasts to fp32, which for float64 inputs rounds them), so
float64 inputs are not supported by the Triton path and run the reference; ``gradcheck`` in float64
covers the reference (tests/kernels/test_reference_gradients.py), and the Triton gradients are checked
against it here.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CHECKS_PATH = Path(__file__).with_name("backward_checks.py")
# (max-abs, relative RMS) per dtype, for the output and each gradient. fp32: summation order only; the
# fp32 reference itself is off from float64 by up to 2.3e-6 relative RMS in dQ1 (the gate's gradient
# g_i (Delta_i - sum_j g_j Delta_j) cancels when the spans overlap), so the bound is 1e-5.
# fp16/bf16: inputs and dO are rounded alike for both sides, so the errors are the kernels' rounding
# of probabilities and dS to the input dtype before the tensor-core products (FlashAttention-2 does
# the same), relative to the float64 reference.
BOUNDS = {"float32": (2e-5, 1e-5), "float16": (2e-2, 4e-3), "bfloat16": (1.5e-1, 3e-2)}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _case(check, config, batch, q_heads, kv_heads, length, dim, **extra) -> dict:
    shape = dict(batch=batch, q_heads=q_heads, kv_heads=kv_heads, length=length, dim=dim)
    return dict(check=check, config=config, **shape, **extra)


INTERPRETER_CASES = {
    "seed chunk, GQA 2, fp32": _case(
        "gradients", "seed", 1, 4, 2, 61, 16, q_len=13, offset=48, dtype="float32"
    ),
    "seed full, padded, D=24, fp32": _case("gradients", "seed", 2, 2, 1, 45, 24, pad=9, dtype="float32"),
    "seed MHA, fp16": _case("gradients", "seed", 1, 2, 2, 40, 16, dtype="float16"),
    "seed GQA 2, bf16": _case("gradients", "seed", 1, 4, 2, 50, 16, q_len=20, offset=30, dtype="bfloat16"),
    "released, spans beyond the window, fp32": _case(
        "gradients", "released", 1, 2, 1, 2400, 16, q_len=6, offset=2394, dtype="float32"
    ),
    "seed, one-direction gradcheck": _case("directional", "seed", 1, 2, 1, 40, 8),
}

CUDA_CASES = {
    "released chunk at the end, bf16": _case(
        "gradients", "released", 1, 32, 2, 5000, 128, q_len=700, offset=4300
    ),
    "released GQA 4, padded, bf16": _case(
        "gradients", "released", 2, 8, 2, 6000, 128, q_len=500, offset=5500, pad=777
    ),
    "seed full prefill, fp16": _case("gradients", "seed", 1, 8, 2, 3001, 64, dtype="float16"),
    "seed chunk, D=96, GQA 3, bf16": _case("gradients", "seed", 1, 6, 2, 2500, 96, q_len=129, offset=1000),
}


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checks():
    return _sibling("backward_checks")


def _assert_within_bounds(results: dict, case: dict) -> None:
    max_abs, rel_rms = BOUNDS[case.get("dtype", "bfloat16")]
    for name, result in results.items():
        assert result["non_finite"] == 0, (name, result)
        assert result["max_abs"] <= max_abs and result["rel_rms"] <= rel_rms, (name, result)


@pytest.fixture(scope="module")
def interpreter_results(run_interpreter_cases) -> dict:
    """Every interpreter case, run in one fresh process (conftest.py); name -> result."""
    return run_interpreter_cases(CHECKS_PATH, INTERPRETER_CASES)


@pytest.mark.parametrize("name", list(INTERPRETER_CASES))
def test_the_triton_gradients_match_the_reference_under_the_interpreter(interpreter_results, name):
    case, result = INTERPRETER_CASES[name], interpreter_results[name]
    if case["check"] == "directional":
        assert abs(result["analytic"] - result["numeric"]) <= 1e-4 * max(1.0, abs(result["numeric"])), result
    else:
        _assert_within_bounds(result, case)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(CUDA_CASES))
def test_the_triton_gradients_match_the_reference_on_cuda(name):
    _assert_within_bounds(_checks().gradient_errors(CUDA_CASES[name], "cuda"), CUDA_CASES[name])


def test_the_entry_point_is_differentiable_through_the_reference_on_cpu(make_inputs):
    # Without CUDA or the interpreter (and for float64) the entry point runs the reference: gradcheck it.
    from superlinear.kernels import superlinear_attention_trainable

    helpers = _sibling("test_reference_gradients")
    TINY = helpers.TINY
    inputs = [x.requires_grad_() for x in helpers.well_separated_inputs(make_inputs, 13, 3)]

    def attention(Q1, Q2, K, V):
        return superlinear_attention_trainable(Q1, Q2, K, V, torch.arange(13), params=TINY)

    assert torch.autograd.gradcheck(attention, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("block_m", [0, 8, 32.0])
def test_a_bad_block_size_is_refused(make_inputs, block_m):
    from superlinear.kernels import SuperlinearParams, superlinear_attention_trainable

    Q1, Q2, K, V = make_inputs(1, 2, 1, 8, 4)
    params = SuperlinearParams(sw_index=1, num_spans=2, backward_factor=1.0, forward_factor=1.0)
    with pytest.raises(ValueError, match="block_m"):
        superlinear_attention_trainable(Q1, Q2, K, V, torch.arange(8), params=params, block_m=block_m)


def test_the_backward_benchmark_runs_its_smoke_size(tmp_path):
    # benchmarks/backward.py is for the GPU; --smoke runs it tiny under the interpreter so it cannot rot.
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "backward.py"
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["L"] == 32 and rows[0]["backward_ms"] > 0 and rows[0]["forward_ms"] > 0
