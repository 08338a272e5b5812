"""Full-size shape check: NVIDIA-Nemotron-3-Nano-30B-A3B shapes with superlinear-exp attention.

Builds the 31.6 B-parameter hybrid with random weights directly on the device (no download, no
safetensors), prefills a random prompt in chunks, then decodes greedily, and reports peak memory,
prefill tok/s and decode tok/s. A time budget stops the prefill early (reporting the chunks that ran)
so the run fits a fixed device lease; the JSON says exactly what ran.

    python benchmarks/full_size_shape.py --device cuda --out results.json      # the issue-5 check
    python benchmarks/full_size_shape.py --preset tiny --device cpu --context 96 --chunk 32 --decode 4
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.graphs import GraphedDecoder
from superlinear.adapters.hybrid.mamba_kernels import fused_ops
from superlinear.adapters.hybrid.model import HybridLM
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import (
    nano_30b_config,
    nano_30b_narrow_config,
    random_model,
    tiny_config,
)
from superlinear.kernels.superlinear.attention.api import ACCELERATED_PREFILL

PRESETS = {
    "nano30b": nano_30b_config,
    "nano30b-narrow": nano_30b_narrow_config,
    "tiny": tiny_config,
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="nano30b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--context", type=int, default=65536, help="prompt tokens to prefill")
    p.add_argument("--chunk", type=int, default=8192, help="prefill chunk size")
    p.add_argument("--decode", type=int, default=64, help="tokens to decode after the prefill")
    p.add_argument("--budget-s", type=float, default=600.0, help="wall-clock budget from start")
    p.add_argument("--decode-reserve-s", type=float, default=30.0, help="budget kept back for decoding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-graphs", action="store_true", help="decode eagerly instead of by CUDA-graph replay")
    p.add_argument(
        "--anatomy", action="store_true", help="after decoding: kernels, per-kind profile, bandwidth"
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    return p.parse_args(argv)


class Clock:
    """Wall-clock timing that waits for the device, and the deadline of the run."""

    def __init__(self, device: torch.device, budget_s: float):
        self.device = device
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def environment(device: torch.device) -> dict[str, Any]:
    """Say what ran: card, software, and which attention and Mamba implementations the device gets."""
    env = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "attention": "triton" if device.type in ACCELERATED_PREFILL else "pytorch reference",
        "mamba": "mamba-ssm triton" if fused_ops(device) is not None else "pytorch",
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["card"] = props.name
        env["card_memory_gib"] = round(props.total_memory / 2**30, 1)
    return env


def build(args: argparse.Namespace, device: torch.device, clock: Clock, record: dict) -> HybridLM:
    """Build the random model on the device and record its size and build time."""
    cfg = HybridConfig.from_dict(PRESETS[args.preset]())
    t0 = clock.now()
    with torch.no_grad():
        model = random_model(cfg, device=device, dtype=DTYPES[args.dtype], seed=args.seed)
    record["build_s"] = round(clock.now() - t0, 2)
    record["params"] = sum(p.numel() for p in model.parameters())
    record["weights_gib"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30, 2)
    record["layers"] = "".join(cfg.layer_kinds)
    record["superlinear"] = repr(cfg.superlinear)
    print(
        f"built {record['params'] / 1e9:.2f} B params, {record['weights_gib']} GiB in {record['build_s']} s",
        flush=True,
    )
    return model


def warm_up(model: HybridLM, device: torch.device) -> None:
    """Run a short prefill and two decode steps so one-time setup stays out of the timings."""
    state = HybridState.empty(model.config, 512, device=device, dtype=model.dtype)
    ids = torch.randint(0, model.config.vocab_size, (1, 300), device=device)
    model(ids[:, :256], state)
    model(ids[:, 256:257], state)
    model(ids[:, 257:258], state)
    state.release()


def prefill(model: HybridLM, state: HybridState, ids: torch.Tensor, args, clock: Clock, record: dict) -> None:
    """Prefill `ids` [1, L] chunk by chunk, stopping early when the next chunk would overrun the budget."""
    chunks = record["prefill_chunks"] = []
    for start in range(0, ids.shape[1], args.chunk):
        expected = 1.3 * chunks[-1]["seconds"] if chunks else 0.0
        if chunks and clock.left() < expected + args.decode_reserve_s:
            record["prefill_stopped_early"] = (
                f"budget: next chunk ~{expected:.1f} s, {clock.left():.1f} s left"
            )
            print(record["prefill_stopped_early"], flush=True)
            break
        piece = ids[:, start : start + args.chunk]
        t0 = clock.now()
        model(piece, state)
        seconds = clock.now() - t0
        chunks.append({"start": start, "tokens": piece.shape[1], "seconds": round(seconds, 3)})
        print(
            f"chunk at {start:>6}: {piece.shape[1]} tokens in {seconds:7.3f} s "
            f"({piece.shape[1] / seconds:9.1f} tok/s)",
            flush=True,
        )
        # Totals after every chunk, so a failure in a later chunk still reports the ones that ran.
        record["prefill_tokens"] = sum(c["tokens"] for c in chunks)
        record["prefill_s"] = round(sum(c["seconds"] for c in chunks), 3)
        record["prefill_tok_s"] = round(record["prefill_tokens"] / record["prefill_s"], 1)


def decode(model: HybridLM, state: HybridState, args, clock: Clock, record: dict) -> None:
    """Decode greedily one token at a time until `args.decode` tokens or the deadline.

    On CUDA each step is one graph replay (`GraphedDecoder`, as `TorchModel` serves) unless --no-graphs.
    """
    graphs = GraphedDecoder(model) if state.logits.is_cuda and not args.no_graphs else None
    record["decode_path"] = "cuda graph" if graphs is not None else "eager"
    steps: list[float] = []
    tokens: list[int] = []
    for _ in range(args.decode):
        if steps and clock.left() < 2 * steps[-1]:
            record["decode_stopped_early"] = f"budget: {clock.left():.1f} s left"
            break
        token = int(torch.argmax(state.logits))
        tokens.append(token)
        t0 = clock.now()
        if graphs is not None:
            graphs.step(state, token)
        else:
            model(torch.tensor([[token]], device=state.logits.device), state)
        steps.append(clock.now() - t0)
    if graphs is not None:
        record["graph_captures"] = graphs.captures
    record["decode_tokens"] = len(steps)
    record["decode_s"] = round(sum(steps), 3)
    record["decode_tok_s"] = round(len(steps) / sum(steps), 2) if steps else None
    record["decode_median_ms"] = round(1000 * statistics.median(steps), 2) if steps else None
    if len(steps) > 1:
        # The first step of a new buffer set runs eagerly and captures the graph; the rest replay it.
        record["decode_first_ms"] = round(1000 * steps[0], 2)
        record["decode_steady_tok_s"] = round((len(steps) - 1) / sum(steps[1:]), 2)
    record["decoded_ids_head"] = tokens[:8]
    print(
        f"decode: {len(steps)} tokens, {record['decode_tok_s']} tok/s, "
        f"median {record['decode_median_ms']} ms",
        flush=True,
    )


def anatomy(model: HybridLM, state: HybridState, record: dict) -> None:
    """Kernels per decode step, graph time by layer kind, bytes per token and the bandwidth fraction."""
    from _decode_anatomy import (
        bytes_per_token,
        copy_bandwidth,
        kernels_per_step,
        layer_profile,
        prefill_profile,
    )

    record.update(kernels_per_step(model, state))
    record["layer_profile_ms"] = layer_profile(model, state)
    record["bytes_per_token"] = bytes_per_token(model, state)
    record["copy_bandwidth_gb_s"] = round(copy_bandwidth(model.device) / 1e9, 1)
    step_s = record["layer_profile_ms"]["whole step"] / 1000
    record["achieved_gb_s"] = round(record["bytes_per_token"] / step_s / 1e9, 1)
    record["bandwidth_fraction_of_copy"] = round(record["achieved_gb_s"] / record["copy_bandwidth_gb_s"], 3)
    record["prefill_chunk_profile_ms"] = prefill_profile(model)
    print(
        json.dumps(
            {k: record[k] for k in ("kernels_per_step", "layer_profile_ms", "prefill_chunk_profile_ms")}
        )
    )


def memory(device: torch.device, record: dict, key: str) -> None:
    if device.type == "cuda":
        record[f"{key}_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        record[f"{key}_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 2)


def run(args: argparse.Namespace, record: dict) -> None:
    """The whole check; fills `record` as it goes, so a failure still leaves what ran."""
    device = torch.device(args.device)
    clock = Clock(device, args.budget_s)
    record.update(environment(device))
    model = build(args, device, clock, record)
    memory(device, record, "after_build_peak")
    try:
        with torch.inference_mode():
            warm_up(model, device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            gen = torch.Generator(device=device).manual_seed(args.seed + 1)
            ids = torch.randint(0, model.config.vocab_size, (1, args.context), device=device, generator=gen)
            state = HybridState.empty(
                model.config, args.context + args.decode, device=device, dtype=model.dtype
            )
            prefill(model, state, ids, args, clock, record)
            record["logits_finite"] = bool(torch.isfinite(state.logits).all())
            decode(model, state, args, clock, record)
            record["state_gib"] = round(state.nbytes() / 2**30, 3)
            if args.anatomy and device.type == "cuda":
                anatomy(model, state, record)
    finally:
        memory(device, record, "run_peak")
        record["wall_s"] = round(time.perf_counter() - clock.start, 1)


def summary(record: dict) -> str:
    keys = (
        "card",
        "date",
        "torch",
        "attention",
        "mamba",
        "params",
        "weights_gib",
        "prefill_tokens",
        "prefill_tok_s",
        "decode_tokens",
        "decode_tok_s",
        "decode_median_ms",
        "decode_path",
        "decode_first_ms",
        "decode_steady_tok_s",
        "kernels_per_step",
        "layer_profile_ms",
        "bytes_per_token",
        "achieved_gb_s",
        "copy_bandwidth_gb_s",
        "bandwidth_fraction_of_copy",
        "run_peak_allocated_gib",
        "run_peak_reserved_gib",
        "state_gib",
        "logits_finite",
        "prefill_stopped_early",
        "error",
    )
    return "\n".join(f"| {k} | {record[k]} |" for k in keys if k in record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    status = 0
    try:
        run(args, record)
    except Exception as exc:  # noqa: BLE001 - keep and report what ran before the failure
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        status = 1
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(summary(record), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
