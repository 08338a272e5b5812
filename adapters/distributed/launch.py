"""Start ranks: one process per rank with torch.multiprocessing spawn, joined into one process group.

The backend follows the device: NCCL when the ranks drive CUDA devices, gloo on CPUs. Ranks rendezvous
through a file (``file://``), so no port has to be free. ``spawn_ranks`` runs a function on every rank
and returns each rank's result, or raises (and kills the ranks) when one fails or the time runs out.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["backend_for", "init_rank", "spawn_ranks", "RanksFailed"]


class RanksFailed(RuntimeError):
    """A spawned rank raised, died, or the ranks did not finish in time."""


def backend_for(device: str | torch.device) -> str:
    """Return the torch.distributed backend for ranks on ``device``: ``nccl`` on CUDA, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_rank(
    rank: int, world: int, init_method: str, device: str | torch.device = "cpu", timeout_s: float = 60.0
) -> None:
    """Join this process to the default process group as ``rank`` of ``world``."""
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(
        backend_for(device),
        init_method=init_method,
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )


def _reference(fn: Callable) -> tuple[str, str | None, str]:
    """Name ``fn`` by module, file and qualified name, so a spawned process can import it."""
    module = sys.modules[fn.__module__]
    return fn.__module__, getattr(module, "__file__", None), fn.__qualname__


def _resolve(reference: tuple[str, str | None, str]) -> Callable:
    """Import a function named by ``_reference``: by module name, else from its file (test modules that
    pytest imported under a name that is not on ``sys.path``)."""
    name, file, qualname = reference
    try:
        target = importlib.import_module(name)
    except ImportError:
        if file is None:
            raise
        spec = importlib.util.spec_from_file_location(name, file)
        target = importlib.util.module_from_spec(spec)
        sys.modules[name] = target
        spec.loader.exec_module(target)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _rank_main(
    rank: int,
    reference: tuple,
    world: int,
    init_method: str,
    out_dir: str,
    threads: int,
    args: tuple,
    device: str = "cpu",
) -> None:
    torch.set_num_threads(threads)
    fn = _resolve(reference)
    device = f"cuda:{rank}" if torch.device(device).type == "cuda" else device
    init_rank(rank, world, init_method, device)
    try:
        result = fn(rank, world, *args)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn_ranks(
    fn: Callable[..., Any],
    world: int,
    *args: Any,
    timeout_s: float = 60.0,
    threads: int = 1,
    device: str = "cpu",
) -> list[Any]:
    """Run ``fn(rank, world, *args)`` in ``world`` spawned ranks; return the results in rank order.

    On ``device="cuda"`` rank r drives ``cuda:r`` over NCCL; otherwise the ranks use gloo on the CPU.

    ``fn`` must be importable by name (a module-level function); its result must be picklable by
    ``torch.save``. Raises RanksFailed when a rank fails or ``timeout_s`` passes; no rank outlives the call.
    """
    with tempfile.TemporaryDirectory(prefix="spl-ranks-") as tmp:
        init_method = "file://" + os.path.join(tmp, "rendezvous")
        context = mp.start_processes(
            _rank_main,
            args=(_reference(fn), world, init_method, tmp, threads, args, device),
            nprocs=world,
            join=False,
            start_method="spawn",
        )
        _join(context, timeout_s)
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _join(context, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=0.2):
            if time.monotonic() > deadline:
                raise RanksFailed(f"the ranks did not finish within {timeout_s:.0f} s")
    except mp.ProcessRaisedException as exc:
        raise RanksFailed(str(exc)) from exc
    except mp.ProcessExitedException as exc:
        raise RanksFailed(str(exc)) from exc
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
