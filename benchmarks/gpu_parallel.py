"""Issue 19's measures: the hybrid model sharded over W ranks (context-parallel attention, expert-parallel
MoE) against one rank, at a context length and a number of concurrent sessions.

Each world size runs in freshly spawned ranks (NCCL on CUDA, rank r on cuda:r; gloo on CPU). Every rank
builds the same random-weights model and shards it (world 1: the unsharded model, eager decode). Each
session's context is either prefilled for real (``--fill prefill``, timed) or filled with random keys,
values and recurrent state (``--fill random``: decode cost depends on the length, not on the content, so
a 10M-token decode can be timed without a 10M-token prefill). Then every session decodes ``--decode``
greedy tokens, all sessions batched in each step; the table reports the aggregate decode rate.

    python benchmarks/gpu_parallel.py --smoke                                   # CPU, gloo, tiny sizes
    python benchmarks/gpu_parallel.py --worlds 1,2 --context 1048576 --decode 32 --out 1m.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from superlinear.adapters.distributed import ShardPlan, shard_model, sharded_state, spawn_ranks
from superlinear.adapters.distributed.steps import decode_rows
from superlinear.adapters.hybrid.batch import decode_step
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.random_weights import random_model
from superlinear.adapters.hybrid.state import HybridState, KVCache, MambaCache
from superlinear.adapters.hybrid.testing import nano_30b_config, nano_30b_narrow_config, tiny_config

PRESETS = {"nano30b": nano_30b_config, "nano30b-narrow": nano_30b_narrow_config, "tiny": tiny_config}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--smoke", action="store_true", help="tiny model on CPU with gloo: worlds 1,2, short context"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="nano30b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--worlds", default=None, help="comma-separated world sizes to compare (default: 1,2)")
    p.add_argument("--context", type=int, default=65536, help="tokens held by each session before decoding")
    p.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    p.add_argument("--decode", type=int, default=32, help="tokens decoded per session")
    p.add_argument(
        "--fill", choices=["random", "prefill"], default=None, help="default: random (--smoke: prefill)"
    )
    p.add_argument("--chunk", type=int, default=8192, help="prefill chunk size (--fill prefill)")
    p.add_argument("--block", type=int, default=256, help="positions per block dealt to the ranks")
    p.add_argument(
        "--shard-single",
        action="store_true",
        help="run world 1 through the sharded path too (one NCCL rank: its overhead alone)",
    )
    p.add_argument("--timeout-s", type=float, default=570.0, help="limit per world size")
    p.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    args = p.parse_args(argv)
    args.fill = args.fill or ("prefill" if args.smoke else "random")
    args.worlds = args.worlds or "1,2"
    if args.smoke:
        args.preset, args.device, args.dtype = "tiny", "cpu", "fp32"
        args.context, args.sessions, args.decode, args.chunk, args.block = 300, 2, 4, 128, 32
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def _fill_random(state: HybridState, length: int, gen: torch.Generator) -> None:
    """Give ``state`` ``length`` tokens of random keys, values and recurrent state, without a prefill.

    The recurrent state is drawn first, so every rank (same seed) holds the same replicated part.
    """
    state.reserve(length)
    for cache in state.layers:
        if isinstance(cache, MambaCache):
            cache.conv.normal_(generator=gen)
            cache.ssm.normal_(std=0.1, generator=gen)
    for cache in state.layers:
        if isinstance(cache, KVCache):
            for buffer in (cache.k, cache.v):
                buffer.normal_(generator=gen)
    state.cursor = length


def _rank(rank: int, world: int, opts: dict) -> dict:
    device = torch.device(f"cuda:{rank}" if opts["device"] == "cuda" else opts["device"])
    cfg = HybridConfig.from_dict(PRESETS[opts["preset"]]())
    model = random_model(cfg, device=device, dtype=DTYPES[opts["dtype"]], seed=0)
    if world > 1 or opts["shard_single"]:
        shard_model(model, ShardPlan(rank, world, opts["block"]))
    gen = torch.Generator(device=device).manual_seed(1)
    record = {"rank": rank, "device": str(device)}
    with torch.inference_mode():
        states = [
            _new_state(model, world, opts["context"] + opts["decode"] + 1) for _ in range(opts["sessions"])
        ]
        _sync(device)
        start = time.perf_counter()
        for state in states:
            _fill(model, state, opts, gen, device)
        _sync(device)
        record["fill_s"] = time.perf_counter() - start
        record["decode_s"], record["tokens"] = _decode(model, states, opts["decode"], device)
    record["decode_tok_s"] = opts["sessions"] * opts["decode"] / record["decode_s"]
    if device.type == "cuda":
        record["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return record


def _new_state(model, world: int, length: int) -> HybridState:
    if hasattr(model, "shard_plan"):
        return sharded_state(model, length)
    return HybridState.empty(model.config, length, device=model.device, dtype=model.dtype)


def _fill(model, state: HybridState, opts: dict, gen: torch.Generator, device: torch.device) -> None:
    if opts["fill"] == "random":
        _fill_random(state, opts["context"] - 1, gen)
        model(torch.zeros(1, 1, dtype=torch.long, device=device), state)
        return
    ids = torch.randint(0, model.config.vocab_size, (1, opts["context"]), generator=gen, device=device)
    for start in range(0, opts["context"], opts["chunk"]):
        model(ids[:, start : start + opts["chunk"]], state)


def _decode(model, states: list[HybridState], steps: int, device: torch.device) -> tuple[float, list[int]]:
    """Decode ``steps`` greedy tokens in every state, all sessions in one batched step; returns the seconds
    and the first session's tokens."""
    step = decode_rows if hasattr(model, "shard_plan") else decode_step
    tokens = []
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        chosen = [int(state.logits.argmax()) for state in states]
        tokens.append(chosen[0])
        step(model, states, chosen)
    _sync(device)
    return time.perf_counter() - start, tokens


def run(args: argparse.Namespace) -> dict:
    opts = {
        k: getattr(args, k)
        for k in (
            "device",
            "preset",
            "dtype",
            "context",
            "sessions",
            "decode",
            "fill",
            "chunk",
            "block",
            "shard_single",
        )
    }
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "host": platform.node(),
        "torch": torch.__version__,
        "options": opts,
        "runs": [],
    }
    if args.device == "cuda":
        record["gpu"] = torch.cuda.get_device_name(0)
    for world in (int(w) for w in args.worlds.split(",")):
        ranks = spawn_ranks(_rank, world, opts, timeout_s=args.timeout_s, device=args.device)
        record["runs"].append({"world": world, **ranks[0], "ranks": ranks})
        print(summary_row(record["runs"][0], record["runs"][-1]), flush=True)
    return record


def summary_row(base: dict, run: dict) -> str:
    speedup = run["decode_tok_s"] / base["decode_tok_s"]
    # With a real prefill both runs decode the same text, so the greedy tokens should agree (fp32 exactly;
    # bf16 may part at a near tie); with random contexts they differ by construction.
    same = "same tokens" if run["tokens"] == base["tokens"] else "other tokens"
    return (
        f"world {run['world']}: fill {run['fill_s']:.2f} s, decode {run['decode_tok_s']:.1f} tok/s "
        f"aggregate ({speedup:.2f}x world {base['world']}, {same})"
        + (f", peak {run['peak_gib']:.1f} GiB on rank 0" if "peak_gib" in run else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{args.preset} {args.dtype} on {args.device}: {args.sessions} session(s) x {args.context} tokens "
        f"({args.fill}), {args.decode} decode steps, worlds {args.worlds}",
        flush=True,
    )
    record = run(args)
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
