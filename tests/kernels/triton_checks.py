"""Checks of the Triton kernels against the reference, shared by the CUDA tests and the interpreter run.

Each check draws fresh N(0, 1) inputs, runs the kernel into a NaN-filled output and returns the errors
against the PyTorch reference (max-abs, relative RMS, count of non-finite outputs). ``main`` runs a list of
cases under the Triton CPU interpreter: it must start in a fresh process, because ``TRITON_INTERPRET`` is
read when Triton is imported.
"""

import json
import os
import sys

SEED_EXAMPLE = dict(sw_index=3, num_spans=3, backward_factor=3.0, forward_factor=1.0, inv_search_power_int=2)
RELEASED = dict(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
CONFIGS = {"seed": SEED_EXAMPLE, "released": RELEASED}


def _inputs(case: dict, device, q_len: int):
    import torch

    dtype = getattr(torch, case.get("dtype", "bfloat16"))
    b, hq, hkv, length, dim = case["batch"], case["q_heads"], case["kv_heads"], case["length"], case["dim"]
    q1, q2 = (torch.randn(b, hq, q_len, dim, device=device).to(dtype) for _ in range(2))
    k, v = (torch.randn(b, hkv, length, dim, device=device).to(dtype) for _ in range(2))
    mask = None
    if case.get("pad"):
        # Left padding on the last row, and a hole right after it (an anchor there is invalid).
        mask = torch.ones(b, length, dtype=torch.long, device=device)
        mask[-1, : case["pad"]] = 0
        mask[-1, case["pad"] + 2] = 0
    return q1, q2, k, v, mask


def _errors(actual, expected) -> dict:
    diff = actual.double() - expected.double()
    scale = expected.double().pow(2).mean().sqrt().item()
    return {
        "max_abs": diff.abs().max().item(),
        "rel_rms": diff.pow(2).mean().sqrt().item() / max(scale, 1e-30),
        "non_finite": int((~actual.double().isfinite()).sum()),
    }


def prefill_errors(case: dict, device) -> dict:
    """Run the Triton prefill on a chunk ``[offset, offset + q_len)`` of ``length`` keys vs the reference."""
    import torch

    from superlinear.kernels import SuperlinearParams
    from superlinear.kernels.superlinear.attention.prefill import triton_prefill
    from superlinear.kernels.superlinear.attention.reference import superlinear_attention_reference

    params = SuperlinearParams(**CONFIGS[case["config"]])
    offset, q_len = case.get("offset", 0), case.get("q_len", case["length"])
    q1, q2, k, v, mask = _inputs(case, device, q_len)
    positions = torch.arange(offset, offset + q_len, device=device)
    out = torch.full_like(q2, float("nan"))
    triton_prefill(q1, q2, k, v, positions, mask, params, out=out)
    expected = superlinear_attention_reference(q1, q2, k, v, positions, mask, params)
    return _errors(out, expected)


def decode_errors(case: dict, device) -> dict:
    """Run the Triton decode at each of ``case["positions"]`` of a ``length``-key cache vs the reference
    (with ``case["chunk_keys"]`` keys per chunk-kernel step when given)."""
    import torch

    from superlinear.kernels import SuperlinearParams
    from superlinear.kernels.superlinear.span.decode import triton_decode
    from superlinear.kernels.superlinear.span.reference import decode_reference

    params = SuperlinearParams(**CONFIGS[case["config"]])
    q1, q2, k, v, mask = _inputs(case, device, 1)
    outs, refs = [], []
    for position in case["positions"]:
        cache_position = torch.tensor([position], device=device)
        out = torch.full_like(q2, float("nan"))
        knobs = {"chunk_keys": case["chunk_keys"]} if "chunk_keys" in case else {}
        outs.append(triton_decode(q1, q2, k, v, cache_position, mask, params, out=out, **knobs))
        refs.append(decode_reference(q1, q2, k, v, cache_position, mask, params))
    return _errors(torch.cat(outs, dim=2), torch.cat(refs, dim=2))


def routes_equal(case: dict, device) -> dict:
    """Compare the Triton span search with the reference's ``route``: slots, bounds and scores, exactly.

    ``ties`` draws small integers, so that many scores tie exactly and the tie rule decides.
    """
    import torch

    from superlinear.kernels import SuperlinearParams
    from superlinear.kernels.superlinear.search.prefill import search_spans
    from superlinear.kernels.superlinear.search.reference import all_stripe_offsets, route, sequence_starts
    from superlinear.kernels.superlinear.search.tables import prefill_capacity, routing_tables

    params = SuperlinearParams(**CONFIGS[case["config"]])
    offset, q_len = case.get("offset", 0), case.get("q_len", case["length"])
    q1, _, k, _, mask = _inputs(case, device, q_len)
    if case.get("ties"):
        q1 = torch.randint(-1, 2, q1.shape, device=device).to(q1.dtype)
        k = torch.randint(-2, 3, k.shape, device=device).to(k.dtype)
    positions = torch.arange(offset, offset + q_len, device=device)
    tables = routing_tables(params, prefill_capacity(k.shape[2]), positions.device)
    ours = search_spans(q1, k, positions, mask, tables, params.num_spans, splits=case.get("splits", 1))
    starts = sequence_starts(mask, k.shape[0], k.shape[2], device)
    ref = route(q1, k, positions, starts, mask, params, all_stripe_offsets(params, int(positions.max())))
    valid = ref.valid
    same = (
        torch.equal(valid, ours.lo <= ours.hi)
        and torch.equal(ref.span_lo[valid], ours.lo[valid].long())
        and torch.equal(ref.span_hi[valid], ours.hi[valid].long())
        and torch.equal(ref.scores[valid], ours.scores[valid])
    )
    return {"equal": bool(same), "valid_slots": int(valid.sum())}


CHECKS = {"prefill": prefill_errors, "decode": decode_errors, "routes": routes_equal}


def main(argv: list[str]) -> None:
    """Run ``argv[1]`` (a JSON list of cases) under the Triton interpreter; print one JSON result list."""
    os.environ["TRITON_INTERPRET"] = "1"
    import torch

    seed = int(argv[2]) if len(argv) > 2 else 0
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    results = [CHECKS[case["check"]](case, "cpu") for case in json.loads(argv[1])]
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv)
