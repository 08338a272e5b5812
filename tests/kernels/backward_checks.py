"""Checks of the Triton backward against autograd through the reference (CUDA tests and interpreter run).

Each check draws fresh N(0, 1) inputs and a random output gradient, runs ``superlinear_attention_trainable``
(the Triton forward and backward) and autograd through ``superlinear_attention_reference`` in float64 on
the same (rounded) inputs, and returns the errors of the output and of each input gradient (max-abs and
RMS relative to the expected RMS, and the count of non-finite values). ``main`` runs a list of cases
under the Triton CPU interpreter in a fresh process (``TRITON_INTERPRET`` is read when Triton is imported).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from triton_checks import CONFIGS, _errors, _inputs  # noqa: E402  (a sibling file, not a package)

NAMES = ("out", "dQ1", "dQ2", "dK", "dV")


def _run(function, inputs, positions, mask, params, d_out=None):
    import torch

    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = function(*leaves, positions, mask, params)
    if d_out is None:
        d_out = torch.randn_like(out, dtype=torch.float32).to(out.dtype)
    (out * d_out.to(out.dtype)).sum().backward()
    return [out.detach(), *(x.grad for x in leaves)], d_out


def gradient_errors(case: dict, device) -> dict:
    """Triton forward + backward on a chunk ``[offset, offset + q_len)`` of ``length`` keys vs float64
    autograd through the reference; returns ``{name: errors}`` for the output and the four gradients."""
    import torch

    from superlinear.kernels import SuperlinearParams, superlinear_attention_trainable
    from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference

    params = SuperlinearParams(**CONFIGS[case["config"]])
    offset, q_len = case.get("offset", 0), case.get("q_len", case["length"])
    q1, q2, k, v, mask = _inputs(case, device, q_len)
    positions = torch.arange(offset, offset + q_len, device=device)

    def trainable(*args):
        *tensors, pos, attention_mask, p = args
        return superlinear_attention_trainable(*tensors, pos, attention_mask, params=p)

    ours, d_out = _run(trainable, (q1, q2, k, v), positions, mask, params)
    wide = [x.double() for x in (q1, q2, k, v)]
    expected, _ = _run(superlinear_attention_reference, wide, positions, mask, params, d_out.double())
    return {name: _errors(a, b) for name, a, b in zip(NAMES, ours, expected, strict=True)}


def directional_derivative(case: dict, device) -> dict:
    """Compare ``<grad, u>`` of the Triton backward (fp32) with a central difference of the float64
    reference along a random direction ``u`` of all four inputs (a one-direction gradcheck)."""
    import torch

    from superlinear.kernels import SuperlinearParams, superlinear_attention_trainable
    from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference

    params = SuperlinearParams(**CONFIGS[case["config"]])
    q_len = case.get("q_len", case["length"])
    inputs = _inputs(dict(case, dtype="float32"), device, q_len)[:4]
    positions = torch.arange(case.get("offset", 0), case.get("offset", 0) + q_len, device=device)
    leaves = [x.clone().requires_grad_() for x in inputs]
    out = superlinear_attention_trainable(*leaves, positions, None, params=params)
    d_out = torch.randn_like(out)
    (out * d_out).sum().backward()
    direction = [torch.randn_like(x) for x in inputs]
    analytic = sum(
        (x.grad.double() * u.double()).sum() for x, u in zip(leaves, direction, strict=True)
    ).item()
    eps = case.get("eps", 1e-6)

    def loss(sign: float) -> float:
        moved = [x.double() + sign * eps * u.double() for x, u in zip(inputs, direction, strict=True)]
        return (
            (superlinear_attention_reference(*moved, positions, None, params) * d_out.double()).sum().item()
        )

    numeric = (loss(1.0) - loss(-1.0)) / (2 * eps)
    return {"analytic": analytic, "numeric": numeric}


CHECKS = {"gradients": gradient_errors, "directional": directional_derivative}


def main(argv: list[str]) -> None:
    """Run ``argv[1]`` (a JSON list of cases) under the Triton interpreter; print one JSON result list."""
    os.environ["TRITON_INTERPRET"] = "1"
    import torch

    torch.manual_seed(int(argv[2]) if len(argv) > 2 else 0)
    torch.set_num_threads(1)
    results = [CHECKS[case["check"]](case, "cpu") for case in json.loads(argv[1])]
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv)
