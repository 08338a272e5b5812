"""Superlinear attention kernels vs dense SDPA: chunk-prefill tokens/s and decode latency, one process.

Usage: python benchmarks/attention.py [--lengths 16384 65536 262144 1048576 4194304] [--chunk 32768]
       [--budget-s 200] [--json results.json]

Shapes of the released model's attention layer: B=1, HQ=32, HKV=2, D=128, bf16, released configuration
(sw_index 65, 3 spans, backward 3, forward 1, p = s = 0.55). Prefill: ``chunk`` queries at the END of a
context of L keys (dense: the same queries against all L keys, bottom-right causal, flash backend with
GQA). Decode: one query at position L - 1 of an L-key cache, eager (wall clock of one call, host work
included) and as a CUDA-graph replay. Times are medians of CUDA-event timings after a warm-up; inputs are
N(0, 1), never zeros. Also prints the prefill's phases (search, span attention) and span-kernel variants.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from superlinear.kernels import (
    SuperlinearParams,
    decode_span_attention_staged_gqa,
    fused_prefill_with_swtriton_gqa,
)
from superlinear.kernels.superlinear.search.prefill import search_spans
from superlinear.kernels.superlinear.search.tables import prefill_capacity, routing_tables
from superlinear.kernels.superlinear.span.decode import triton_decode
from superlinear.kernels.superlinear.span.prefill import span_attention

RELEASED = dict(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)
# The published decode names the span count ``topk``.
DECODE = {("topk" if key == "num_spans" else key): value for key, value in RELEASED.items()}
HQ, HKV, D = 32, 2, 128
# (block_m, block_n, num_warps, num_stages) of the span kernel; (block_j, num_stages) of the search;
# (chunk_keys, programs_per_sm) of the decode's chunk kernel. The first of each is the default.
SPAN_VARIANTS = [(128, 64, 8, 3), (128, 64, 8, 2), (64, 64, 4, 3)]
SEARCH_VARIANTS = [(128, 2), (64, 2), (128, 3)]
DECODE_VARIANTS = [(128, 1), (64, 1), (128, 2)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[16384, 65536, 262144, 1048576, 4194304])
    p.add_argument("--chunk", type=int, default=32768)
    p.add_argument("--budget-s", type=float, default=200.0, help="skip dense runs that would overrun this")
    p.add_argument("--variants-at", type=int, default=1048576, help="L at which span-kernel variants run")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def event_ms(fn, reps: int, warmup: int = 1, inner: int = 1) -> float:
    """Median milliseconds of ``fn`` over ``reps`` event-timed runs of ``inner`` calls each."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


def wall_ms(fn, reps: int) -> float:
    """Median wall-clock milliseconds of one synchronized call (eager latency, host work included)."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def graph_ms(fn, reps: int = 7, inner: int = 20) -> float:
    """Median milliseconds of one CUDA-graph replay of ``fn`` (captured after two eager warm-ups)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return event_ms(graph.replay, reps, warmup=2, inner=inner)


def dense_prefill(q, k, v):
    """Dense attention of the chunk's queries (the last ones) to all keys, bottom-right causal."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        if q.shape[2] == k.shape[2]:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        mask = causal_lower_right(q.shape[2], k.shape[2])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


def dense_full(q, k, v):
    """Dense attention of the queries to all keys, no mask (a decode step; flash backend, GQA)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def prefill_rows(length: int, chunk: int, args, deadline: float, record: dict) -> None:
    """Time our chunk prefill (whole and by phase) and dense SDPA at one context length."""
    q_len = min(chunk, length)
    q1, q2 = (torch.randn(1, HQ, q_len, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(1, HKV, length, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    positions = torch.arange(length - q_len, length, device="cuda")
    params = SuperlinearParams(**RELEASED)
    reps = 5 if length <= 1 << 20 else 3
    ours = event_ms(lambda: fused_prefill_with_swtriton_gqa(q1, q2, k, v, positions, **RELEASED), reps)
    tables = routing_tables(params, prefill_capacity(length), q1.device)
    routes = search_spans(q1, k, positions, None, tables, 3)
    search = event_ms(lambda: search_spans(q1, k, positions, None, tables, 3), reps)
    span = event_ms(lambda: span_attention(q2, k, v, routes), reps)
    row = dict(
        L=length, q_len=q_len, ours_ms=ours, search_ms=search, span_ms=span, ours_tok_s=q_len / ours * 1e3
    )
    if length == args.variants_at:
        row["span_variants_ms"] = {
            str(cfg): event_ms(lambda cfg=cfg: span_attention(q2, k, v, routes, *cfg), 3)
            for cfg in SPAN_VARIANTS
        }
        row["search_variants_ms"] = {
            str(cfg): event_ms(
                lambda cfg=cfg: search_spans(
                    q1, k, positions, None, tables, 3, block_j=cfg[0], num_stages=cfg[1]
                ),
                3,
            )
            for cfg in SEARCH_VARIANTS
        }
    row.update(dense_rows(q2, k, v, q_len, ours, deadline))
    record["prefill"].append(row)
    print(json.dumps(row), flush=True)


def dense_rows(q2, k, v, q_len: int, ours_ms: float, deadline: float) -> dict:
    """Time dense SDPA on the chunk, unless its estimated time (at 300 TFLOP/s) would overrun the budget."""
    guess_s = 4.0 * q_len * HQ * k.shape[2] * D / 300e12
    if time.perf_counter() + 2 * guess_s + 5 > deadline:
        return {"dense": "skipped: over the time budget"}
    mode = "bottom-right causal"
    try:
        last = dense_prefill(q2, k, v)[:, :, -1:]
    except Exception as error:
        mode, last = f"full (no causal mask; lower-right failed: {error})"[:200], None
    if last is not None:
        # The chunk's last query sees every key: it must equal a one-query dense decode.
        check = (last.float() - dense_full(q2[:, :, -1:], k, v).float()).abs().max().item()
    run = (lambda: dense_prefill(q2, k, v)) if last is not None else (lambda: dense_full(q2, k, v))
    long_run = guess_s > 2
    dense = event_ms(run, 1 if long_run else 3, warmup=0 if long_run else 1)
    row = dict(dense_mode=mode, dense_ms=dense, dense_tok_s=q_len / dense * 1e3, speedup=dense / ours_ms)
    if last is not None:
        row["dense_last_row_check"] = check
    return row


def decode_rows(length: int, record: dict) -> None:
    """Time our decode (eager, graph) and dense SDPA decode (eager, graph) at position L - 1."""
    q1, q2 = (torch.randn(1, HQ, 1, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(1, HKV, length, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    position = torch.tensor([length - 1], device="cuda")

    def ours():
        return decode_span_attention_staged_gqa(q1, q2, k, v, position, **DECODE)

    row = dict(L=length, ours_eager_ms=wall_ms(ours, 20), ours_graph_ms=graph_ms(ours))
    row.update(
        dense_eager_ms=wall_ms(lambda: dense_full(q2, k, v), 20),
        dense_graph_ms=graph_ms(lambda: dense_full(q2, k, v)),
    )
    row["graph_ratio"] = row["ours_graph_ms"] / row["dense_graph_ms"]
    params = SuperlinearParams(**RELEASED)
    row["chunk_keys_programs_per_sm_graph_ms"] = {
        str(cfg): graph_ms(
            lambda cfg=cfg: triton_decode(
                q1, q2, k, v, position, None, params, chunk_keys=cfg[0], programs_per_sm=cfg[1]
            )
        )
        for cfg in DECODE_VARIANTS
    }
    record["decode"].append(row)
    print(json.dumps(row), flush=True)


def measure(run, length: int) -> None:
    """Run one measurement; an error (say, out of memory) is printed, and the other lengths still run."""
    try:
        run()
    except Exception as error:
        print(json.dumps({"L": length, "error": repr(error)[:500]}), flush=True)
    torch.cuda.empty_cache()


def table(record: dict) -> str:
    """Return the markdown table of a run."""
    lines = [
        "| L | ours prefill tok/s | dense prefill tok/s | prefill speedup | search / span ms | ours decode us (eager / graph) | dense decode us (eager / graph) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    decode = {row["L"]: row for row in record["decode"]}
    for row in record["prefill"]:
        dense = f"{row['dense_tok_s']:,.0f}" if "dense_tok_s" in row else "not run"
        speed = f"{row['speedup']:.2f}x" if "speedup" in row else "-"
        dec = decode.get(row["L"], {})
        ours_dec = f"{dec.get('ours_eager_ms', float('nan')) * 1e3:.0f} / {dec.get('ours_graph_ms', float('nan')) * 1e3:.0f}"
        dense_dec = f"{dec.get('dense_eager_ms', float('nan')) * 1e3:.0f} / {dec.get('dense_graph_ms', float('nan')) * 1e3:.0f}"
        lines.append(
            f"| {row['L']:,} | {row['ours_tok_s']:,.0f} | {dense} | {speed} | {row['search_ms']:.1f} / {row['span_ms']:.1f} | {ours_dec} | {dense_dec} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.perf_counter() + args.budget_s
    props = torch.cuda.get_device_properties(0)
    record = dict(
        card=props.name, memory_gib=props.total_memory / 2**30, torch=torch.__version__, prefill=[], decode=[]
    )
    import triton

    record["triton"] = triton.__version__
    print(json.dumps({k: record[k] for k in ("card", "memory_gib", "torch", "triton")}), flush=True)
    torch.manual_seed(0)
    for length in args.lengths:
        measure(lambda length=length: decode_rows(length, record), length)
        measure(lambda length=length: prefill_rows(length, args.chunk, args, deadline, record), length)
    print(table(record))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
