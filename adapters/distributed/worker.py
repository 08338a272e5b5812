"""A worker rank of a sharded server: load the model's shard, then run rank 0's operations until told to stop."""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import attrs
import torch
import torch.distributed as dist

from ..hybrid.state import StateCheckpoint
from .launch import init_rank
from .link import STOP, receive
from .loading import load_sharded_model
from .model import is_sharded, model_bytes, shard_model, sharded_state
from .plan import ShardPlan
from .state import ShardedState, import_local
from .steps import append_tokens, decode_rows

__all__ = ["LaunchSpec", "worker_main", "rank_device", "join_ranks", "load_shard", "weight_bytes_of_ranks"]

log = logging.getLogger(__name__)
# Joining: every rank must arrive within this, or the start fails (a worker that died can't hang it).
STARTUP_TIMEOUT = timedelta(minutes=5)
# Serving: an idle server leaves the workers waiting for the next operation as long as it stays idle.
SERVING_TIMEOUT = timedelta(days=30)


@attrs.frozen
class LaunchSpec:
    """What every rank needs to load its shard."""

    path: str
    world: int
    device: str
    dtype: str
    chunk_size: int
    block: int
    init_method: str


def rank_device(device: str, rank: int) -> str:
    """The device of ``rank``: ``cuda:rank`` when serving on CUDA, else ``device`` (all CPU ranks share it)."""
    return f"cuda:{rank}" if torch.device(device).type == "cuda" else device


def join_ranks(spec: LaunchSpec, rank: int):
    """Join the default group within STARTUP_TIMEOUT; return the group the server runs on (SERVING_TIMEOUT)."""
    init_rank(
        rank, spec.world, spec.init_method, rank_device(spec.device, rank), STARTUP_TIMEOUT.total_seconds()
    )
    return dist.new_group(timeout=SERVING_TIMEOUT)


def load_shard(spec: LaunchSpec, rank: int, group=None):
    """Load this rank's share of the checkpoint on its device, sharded over ``group`` (only the share is
    read: ``loading.load_sharded_model``; a random-weights model is drawn whole, then sharded); returns
    the port's model."""
    from ..torch_model import TorchModel

    plan = ShardPlan(rank, spec.world, spec.block, group)
    model = TorchModel.from_dir(
        Path(spec.path),
        device=rank_device(spec.device, rank),
        dtype=spec.dtype,
        chunk_size=spec.chunk_size,
        load_lm=functools.partial(load_sharded_model, plan=plan),
    )
    if not is_sharded(model.lm):
        shard_model(model.lm, plan)
    return model


def weight_bytes_of_ranks(lm, group) -> list[int]:
    """Every rank's parameter bytes, in rank order (a collective: every rank calls it once after loading)."""
    sizes: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(sizes, model_bytes(lm), group=group)
    return sizes


@attrs.define(eq=False)
class _Worker:
    lm: torch.nn.Module
    chunk_size: int
    group: object
    states: dict[int, ShardedState] = attrs.field(factory=dict)
    checkpoints: dict[int, StateCheckpoint] = attrs.field(factory=dict)

    def forget(self, forgotten) -> None:
        for kind, handle in forgotten:
            (self.states if kind == "state" else self.checkpoints).pop(handle, None)

    def table(self) -> dict[str, Callable]:
        s = self.states
        return {
            "new": lambda h, n: s.__setitem__(h, sharded_state(self.lm, n)),
            "append": lambda h, ids: append_tokens(self.lm, s[h], ids, self.chunk_size),
            "decode": lambda hs, ids: decode_rows(self.lm, [s[h] for h in hs], ids),
            "checkpoint": lambda h, c: self.checkpoints.__setitem__(c, s[h].checkpoint()),
            "restore": lambda h, c: s[h].restore(self.checkpoints[c]),
            "fork": lambda h, new: s.__setitem__(new, s[h].fork()),
            "resize": lambda h, n: s[h].resize(n),
            "release": lambda h: s.pop(h).release(),
            "export": lambda h: [None for _ in s[h].export()],
            "import": lambda h, n: s.__setitem__(h, import_local(self.lm, _scattered(self.group), n)),
        }


def _scattered(group) -> dict:
    """Receive this rank's part of rank 0's ``scatter_object_list``."""
    box: list = [None]
    dist.scatter_object_list(box, None, src=0, group=group)
    return box[0]


def worker_main(index: int, spec: LaunchSpec) -> None:
    """Entry point of spawned worker ``index`` (rank ``index + 1``): serve until rank 0 says stop."""
    rank = index + 1
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s"
    )
    torch.set_num_threads(1)
    # Rank 0 stops the workers (a "stop" operation, or its exit closing the connections); an interrupt
    # meant for the server's process group must not end a worker in the middle of an operation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve(rank, spec)
    except BaseException:
        # The spawn wrapper hands a worker's traceback only to a parent that joins; ours runs a server.
        log.exception("rank %d stopped on an error", rank)
        raise


def _serve(rank: int, spec: LaunchSpec) -> None:
    group = join_ranks(spec, rank)
    try:
        model = load_shard(spec, rank, group)
        weight_bytes_of_ranks(model.lm, group)
        worker = _Worker(model.lm, spec.chunk_size, group)
        table = worker.table()
        with torch.inference_mode():
            while True:
                op, args, forgotten = receive(group)
                worker.forget(forgotten)
                if op == STOP:
                    break
                try:
                    table[op](*args)
                except ValueError as exc:
                    # A refused argument (say, a stale checkpoint): rank 0 checked the same inputs the same
                    # way, refused them too and tells its caller. Any other error ends the worker, so rank 0
                    # fails on a closed connection instead of pairing the next operation's collectives
                    # with what is left of this one.
                    log.warning("rank %d: operation %s refused: %s", rank, op, exc)
    finally:
        dist.destroy_process_group()
