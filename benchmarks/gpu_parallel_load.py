"""Peak memory of loading a sharded model: every rank reading only its share (``load_sharded_model``)
against every rank loading the whole checkpoint and then sharding it (``shard_model``, the old path).

Each mode runs in freshly spawned ranks (gloo on CPU, or NCCL with ``--device cuda``); each rank reports
its peak resident set (``VmHWM``: anonymous memory plus the pages of the memory-mapped safetensors it
touched) before and after the load, the CUDA peak on GPUs, and its parameter bytes. Without ``--dir`` a
random checkpoint of the nano30b layer pattern with wide experts is written to a temporary directory.

    python benchmarks/gpu_parallel_load.py --world 2 --out load.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from superlinear.adapters.distributed import ShardPlan, shard_model, spawn_ranks
from superlinear.adapters.distributed.loading import load_sharded_model
from superlinear.adapters.distributed.model import model_bytes
from superlinear.adapters.hybrid.config import HybridConfig, parse_config_text
from superlinear.adapters.hybrid.loader import load_model
from superlinear.adapters.hybrid.testing import nano_30b_narrow_config, random_weights, write_checkpoint

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# About 1.2 GB in fp32, 90% of it routed experts (as in the 30B model).
WIDE_EXPERTS = dict(
    hidden_size=512,
    n_routed_experts=64,
    moe_intermediate_size=512,
    num_hidden_layers=18,
    hybrid_override_pattern="MEMEMEM*EMEMEMEM*E",
)


def _status(field: str) -> int:
    """A memory field of /proc/self/status in bytes: VmHWM (peak resident set), RssAnon (anonymous now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss() -> int:
    """This process's peak resident set so far, in bytes."""
    return _status("VmHWM")


def _load(rank: int, world: int, directory: str, mode: str, dtype: str, device: str) -> dict:
    cfg = HybridConfig.from_dict(parse_config_text((Path(directory) / "config.json").read_text()))
    device = f"cuda:{rank}" if device == "cuda" else device
    plan, before = ShardPlan(rank, world), _peak_rss()
    start = time.perf_counter()
    if mode == "sharded":
        lm = load_sharded_model(directory, cfg, plan, dtype=DTYPES[dtype], device=device)
    else:
        lm = shard_model(load_model(directory, cfg, dtype=DTYPES[dtype], device=device)[0], plan)
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else 0
    return {
        "rank": rank,
        "mode": mode,
        "rss_before": before,
        "rss_peak": _peak_rss(),
        "anon_after": _status("RssAnon"),
        "cuda_peak": cuda_peak,
        "param_bytes": model_bytes(lm),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=None, help="checkpoint directory (default: write a random one)")
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spl-load-") as tmp:
        directory = args.dir
        if directory is None:
            raw = nano_30b_narrow_config("superlinear-exp", **WIDE_EXPERTS)
            directory = str(write_checkpoint(tmp, raw, random_weights(raw, seed=0), shards=4))
        size = sum(f.stat().st_size for f in Path(directory).glob("*.safetensors"))
        rows = []
        for mode in ("whole", "sharded"):
            rows += spawn_ranks(_load, args.world, directory, mode, args.dtype, args.device, timeout_s=1800)
    mib = 1 << 20
    print(f"checkpoint {size / mib:.0f} MiB, world {args.world}, {args.dtype} on {args.device}")
    print("mode     rank  params MiB  peak RSS MiB  (before load)  anon after MiB  CUDA peak MiB  load s")
    for r in rows:
        print(
            f"{r['mode']:8} {r['rank']:4}  {r['param_bytes'] / mib:10.0f}  {r['rss_peak'] / mib:12.0f}"
            f"  ({r['rss_before'] / mib:11.0f})  {r['anon_after'] / mib:14.0f}  {r['cuda_peak'] / mib:13.0f}"
            f"  {r['seconds']:6.2f}"
        )
    if args.out:
        record = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "host": platform.node(),
            "checkpoint_bytes": size,
            "args": vars(args),
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
