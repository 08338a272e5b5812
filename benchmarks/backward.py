"""Backward vs forward of the trainable Superlinear attention: time and peak memory, one process.

Usage: python benchmarks/backward.py [--lengths 65536 262144] [--chunk 0] [--dense] [--json out.json]
       python benchmarks/backward.py --smoke      # tiny sizes on CPU under the Triton interpreter

Shapes of the released model's attention layer: B=1, HQ=32, HKV=2, D=128, bf16, released configuration.
Each length L is a full prefill of L queries against L keys (a training pack), or with ``--chunk C`` the
last C queries of an L-key context. Measured for ``superlinear_attention_trainable``: the forward with
gradients enabled (it keeps its statistics), the backward (``out.backward(dO)``), the inference forward
``superlinear_attention`` for comparison, and the peak CUDA memory above the inputs of each phase. With
``--dense``, dense SDPA forward + backward (flash backend, causal, GQA) on the same queries, where it fits.
Times are medians of CUDA-event timings after a warm-up; inputs are N(0, 1). ``--smoke`` checks that the
script runs (seed configuration, fp32, L = 32): its times are interpreter times, not measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

if "--smoke" in sys.argv:  # read when Triton is imported
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from superlinear.kernels import (  # noqa: E402
    SuperlinearParams,
    superlinear_attention,
    superlinear_attention_trainable,
)

RELEASED = dict(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
SEED = dict(sw_index=3, num_spans=3, backward_factor=3.0, forward_factor=1.0, inv_search_power_int=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[65536, 262144])
    p.add_argument("--chunk", type=int, default=0, help="queries at the end of the context (0: all L)")
    p.add_argument("--heads", type=int, nargs=3, default=[32, 2, 128], metavar=("HQ", "HKV", "D"))
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--dense", action="store_true", help="also time dense SDPA forward + backward")
    p.add_argument("--smoke", action="store_true", help="tiny run on CPU under the Triton interpreter")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


class Clock:
    """Median milliseconds of a callable and the peak memory it allocates (CUDA), or wall time (CPU)."""

    def __init__(self, device: torch.device, reps: int):
        self.cuda, self.reps = device.type == "cuda", reps

    def ms(self, fn, setup=None) -> float:
        times = []
        for _ in range(self.reps + 1):  # the first run is the warm-up (compilation)
            state = setup() if setup else None
            self.sync()
            start = time.perf_counter()
            fn(state) if setup else fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times[1:])

    def peak_mib(self, fn, setup=None) -> float | None:
        if not self.cuda:
            return None
        state = setup() if setup else None
        self.sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(state) if setup else fn()
        self.sync()
        return (torch.cuda.max_memory_allocated() - base) / 2**20

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def inputs(length: int, q_len: int, heads, dtype, device):
    """N(0, 1) Q1, Q2 [1, HQ, q_len, D], K, V [1, HKV, L, D], the queries' positions and dO."""
    hq, hkv, dim = heads
    q1, q2, d_out = (torch.randn(1, hq, q_len, dim, device=device, dtype=dtype) for _ in range(3))
    k, v = (torch.randn(1, hkv, length, dim, device=device, dtype=dtype) for _ in range(2))
    return q1, q2, k, v, torch.arange(length - q_len, length, device=device), d_out


def measure(length: int, args, params, dtype, device) -> dict:
    """One row of the table: forward / backward times and peak memory at ``length`` keys."""
    q_len = args.chunk or length
    q1, q2, k, v, positions, d_out = inputs(length, q_len, args.heads, dtype, device)
    leaves = [x.requires_grad_() for x in (q1, q2, k, v)]
    clock = Clock(device, args.reps)

    def forward():
        return superlinear_attention_trainable(*leaves, positions, params=params)

    def backward(out):
        out.backward(d_out)
        for x in leaves:
            x.grad = None

    with torch.no_grad():
        inference_ms = clock.ms(lambda: superlinear_attention(q1, q2, k, v, positions, params=params))
        inference_mib = clock.peak_mib(lambda: superlinear_attention(q1, q2, k, v, positions, params=params))
    row = {
        "L": length,
        "queries": q_len,
        "inference_forward_ms": inference_ms,
        "inference_forward_peak_mib": inference_mib,
        "forward_ms": clock.ms(forward),
        "forward_peak_mib": clock.peak_mib(forward),
        "backward_ms": clock.ms(backward, setup=forward),
        "backward_peak_mib": clock.peak_mib(backward, setup=forward),
    }
    if args.dense:
        row.update(dense(q2, k, v, d_out, clock))
    return row


def dense(q2, k, v, d_out, clock: Clock) -> dict:
    """Dense causal SDPA (bottom-right aligned for a chunk) forward + backward on the same queries."""
    q, kk, vv = (x.detach().requires_grad_() for x in (q2, k, v))
    if q.shape[2] != kk.shape[2]:
        return {"dense_note": "dense timing covers full prefill only"}

    def forward():
        return F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=True)

    try:
        fwd = clock.ms(forward)
        bwd = clock.ms(lambda out: out.backward(d_out), setup=forward)
    except torch.OutOfMemoryError:
        return {"dense_note": "out of memory"}
    return {"dense_forward_ms": fwd, "dense_backward_ms": bwd}


def table(rows: list[dict]) -> str:
    """Markdown table of the rows (times in ms, memory in MiB)."""
    keys = [key for key in rows[0] if key != "L"]
    lines = ["| L | " + " | ".join(keys) + " |", "| --- " * (len(keys) + 1) + "|"]
    for row in rows:
        cells = [
            f"{row.get(key):.1f}" if isinstance(row.get(key), float) else str(row.get(key)) for key in keys
        ]
        lines.append(f"| {row['L']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.lengths, args.heads, args.reps, args.chunk = [32], [4, 2, 16], 1, args.chunk and 8
        params, dtype, device = SuperlinearParams(**SEED), torch.float32, torch.device("cpu")
    elif not torch.cuda.is_available():
        print("needs a CUDA device (or --smoke)", file=sys.stderr)
        return 2
    else:
        params, dtype, device = SuperlinearParams(**RELEASED), torch.bfloat16, torch.device("cuda")
    torch.manual_seed(0)
    rows = [measure(length, args, params, dtype, device) for length in args.lengths]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU, Triton interpreter"
    print(f"device: {name}; heads {args.heads}; {dtype}; {time.strftime('%Y-%m-%d')}")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": name, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
