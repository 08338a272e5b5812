"""Checks of the batched decode (``triton_decode_rows``) against the per-row ``triton_decode``.

Each case draws B rows, each with its own KV buffers [1, HKV, cap_b, D] (separate allocations, different
capacities) and its own position, runs the batched call once and each row alone, and returns the largest
difference between them and against the PyTorch reference. ``plant`` runs the batched call with a
deliberate bug (the last row's position off by one, or its capacity entry one short, which shifts the
keys of every head but the first) to show the comparison
catches it. ``main`` runs under the Triton CPU interpreter in a fresh process (see triton_checks.py).
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the sibling triton_checks (not a package)
from triton_checks import CONFIGS  # noqa: E402


def rows_errors(case: dict, device) -> dict:
    """Batched vs per-row decode (and vs the reference) for ``case``'s capacities and positions."""
    import torch

    from superlinear.kernels import SuperlinearParams, kv_rows
    from superlinear.kernels.superlinear.span.decode import triton_decode, triton_decode_rows
    from superlinear.kernels.superlinear.span.reference import decode_reference

    params = SuperlinearParams(**CONFIGS[case["config"]])
    dtype = getattr(torch, case.get("dtype", "bfloat16"))
    caps, positions = case["caps"], case["positions"]
    hq, hkv, dim, rows = case["q_heads"], case["kv_heads"], case["dim"], len(caps)
    q1, q2 = (torch.randn(rows, hq, 1, dim, device=device).to(dtype) for _ in range(2))
    keys = [torch.randn(1, hkv, c, dim, device=device).to(dtype) for c in caps]
    values = [torch.randn(1, hkv, c, dim, device=device).to(dtype) for c in caps]
    where = torch.tensor(positions, dtype=torch.int64, device=device)
    # A separate anchor (as a graph's scratch buffer), offsets counted from it.
    anchors = tuple(torch.zeros(1, hkv, 8, dim, dtype=dtype, device=device) for _ in range(2))
    k_off, v_off = kv_rows.offsets(keys, base=anchors[0]), kv_rows.offsets(values, base=anchors[1])
    table_caps = torch.tensor(caps, dtype=torch.int64, device=device)
    plant = case.get("plant")
    if plant == "position":
        where = where.clone()
        where[-1] -= 1
    if plant == "capacity":
        table_caps[-1] -= 1
    out = torch.full_like(q2, float("nan"))
    triton_decode_rows(
        q1,
        q2,
        keys,
        values,
        where,
        params,
        tables=(k_off, v_off, table_caps),
        anchors=anchors,
        capacity=case.get("capacity"),
        out=out,
    )
    alone, ref = [], []
    for b, pos in enumerate(positions):
        at = torch.tensor([pos], device=device)
        alone.append(triton_decode(q1[b : b + 1], q2[b : b + 1], keys[b], values[b], at, None, params))
        ref.append(decode_reference(q1[b : b + 1], q2[b : b + 1], keys[b], values[b], at, None, params))
    alone, ref = torch.cat(alone), torch.cat(ref)
    diff = (out.double() - alone.double()).abs()
    scale = ref.double().pow(2).mean().sqrt().item()
    return {
        "max_abs": diff.max().item(),
        "ref_max_abs": (out.double() - ref.double()).abs().max().item(),
        "ref_rel_rms": (out.double() - ref.double()).pow(2).mean().sqrt().item() / max(scale, 1e-30),
        "non_finite": int((~out.double().isfinite()).sum()),
    }


def main(argv: list[str]) -> None:
    """Run ``argv[1]`` (a JSON list of cases) under the Triton interpreter; print one JSON result list."""
    os.environ["TRITON_INTERPRET"] = "1"
    import torch

    torch.manual_seed(int(argv[2]) if len(argv) > 2 else 0)
    torch.set_num_threads(1)
    print(json.dumps([rows_errors(case, "cpu") for case in json.loads(argv[1])]))


if __name__ == "__main__":
    main(sys.argv)
