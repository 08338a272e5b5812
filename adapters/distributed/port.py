"""``ShardedTorchModel``: the ModelPort of a model sharded over ranks; this process is rank 0.

The HTTP frontend and the session core talk to it like to ``TorchModel``. Each operation that touches a
state is checked here first (so a refused request reaches no rank), then broadcast to the worker ranks
(``RankLink``) and run on every rank. Sampling and log-probabilities read rank 0's logits, which every
rank computes alike. Snapshots export and import in the single-process format.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from superlinear.core.errors import ContextLengthExceeded, SnapshotError

from ..hybrid.state import StateCheckpoint
from ..torch_model import TorchModel
from .link import RankLink
from .model import model_bytes, sharded_state
from .state import ShardedState, import_sharded, rank_arrays
from .steps import append_tokens, decode_rows
from .worker import LaunchSpec, join_ranks, load_shard, rank_device, weight_bytes_of_ranks, worker_main

__all__ = ["ShardedTorchModel", "launch_sharded_model"]


class ShardedTorchModel(TorchModel):
    """A ``TorchModel`` whose model is sharded over ``link.world`` ranks, driven from rank 0."""

    def __init__(
        self,
        model: TorchModel,
        link: RankLink,
        workers=None,
        rendezvous=None,
        weight_bytes: list[int] | None = None,
    ):
        super().__init__(
            model.lm, name=model.info.name, fingerprint=model.info.fingerprint, chunk_size=model.chunk_size
        )
        # The sharded attention reads positions on the host, so decode is not graph-captured.
        self.graphs = None
        self.link = link
        self._workers = workers
        self._rendezvous = rendezvous
        self._weight_bytes = weight_bytes or [model_bytes(model.lm)]
        self._ids = itertools.count(1)
        self._checkpoint_ids: weakref.WeakKeyDictionary[StateCheckpoint, int] = weakref.WeakKeyDictionary()

    def new_state(self, max_seq_len: int) -> ShardedState:
        """Create an empty sharded state on every rank."""
        handle = next(self._ids)
        with self.link.command("new", handle, max_seq_len), torch.inference_mode():
            state = sharded_state(self.lm, max_seq_len)
        state.handle = handle
        weakref.finalize(state, self.link.forget, "state", handle)
        return state

    def append(self, state: ShardedState, token_ids: Sequence[int]) -> None:
        """Prefill ``token_ids`` on every rank (checked here first, as ``TorchModel.append`` checks)."""
        ids = list(token_ids)
        if not ids:
            return
        self._check_append(state, ids)
        with self.link.command("append", state.handle, ids), torch.inference_mode():
            append_tokens(self.lm, state, ids, self.chunk_size)

    def decode_batch(self, states: Sequence[ShardedState], token_ids: Sequence[int]) -> None:
        """Append one token to each state on every rank; a bad row raises `RowRejected` (as `TorchModel`'s)
        and changes no state."""
        if len(states) != len(token_ids):
            raise ValueError(f"{len(states)} states but {len(token_ids)} tokens")
        self._check_rows(states, [[tid] for tid in token_ids])
        if states:
            with (
                self.link.command("decode", [s.handle for s in states], list(token_ids)),
                torch.inference_mode(),
            ):
                decode_rows(self.lm, states, token_ids)

    def checkpoint(self, state: ShardedState) -> StateCheckpoint:
        """Capture a checkpoint on every rank."""
        number = next(self._ids)
        with self.link.command("checkpoint", state.handle, number), torch.inference_mode():
            checkpoint = state.checkpoint()
        self._checkpoint_ids[checkpoint] = number
        weakref.finalize(checkpoint, self.link.forget, "checkpoint", number)
        return checkpoint

    def restore(self, state: ShardedState, checkpoint: StateCheckpoint) -> None:
        """Return every rank's state to ``checkpoint``."""
        number = self._checkpoint_ids.get(checkpoint)
        if number is None:
            raise ValueError("checkpoint was taken from another state")
        with self.link.command("restore", state.handle, number), torch.inference_mode():
            state.restore(checkpoint)

    def fork(self, state: ShardedState) -> ShardedState:
        """Copy the state on every rank."""
        handle = next(self._ids)
        with self.link.command("fork", state.handle, handle), torch.inference_mode():
            copy = state.fork()
        copy.handle = handle
        weakref.finalize(copy, self.link.forget, "state", handle)
        return copy

    def resize(self, state: ShardedState, max_seq_len: int) -> None:
        """Change the maximum length on every rank (never below the tokens held)."""
        length = max(max_seq_len, state.cursor, 1)
        with self.link.command("resize", state.handle, length), torch.inference_mode():
            state.resize(length)

    def release(self, state: ShardedState) -> None:
        """Free the state on every rank now."""
        if state.handle and not self.link.closed:
            with self.link.command("release", state.handle):
                state.release()

    def export_state(self, state: ShardedState) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield the state in the single-process snapshot format (KV gathered from every rank)."""
        with self.link.command("export", state.handle):
            arrays = list(state.export())
        yield from arrays

    def import_state(self, arrays: Mapping[str, Any], max_seq_len: int) -> ShardedState:
        """Build a sharded state on every rank from single-process snapshot arrays.

        Rank 0 checks them (building its own part) before any worker hears of them; each worker then
        receives only its positions' keys and values.
        """
        tensors = {name: torch.as_tensor(value) for name, value in arrays.items()}
        try:
            with torch.inference_mode():
                state = import_sharded(self.lm, tensors, max_seq_len)
        except ValueError as exc:
            if "max_seq_len" in str(exc):
                raise ContextLengthExceeded(str(exc)) from exc
            raise SnapshotError(f"state arrays don't fit this model: {exc}") from exc
        state.handle = next(self._ids)
        plan = self.lm.shard_plan
        with self.link.command("import", state.handle, max_seq_len):
            parts = [{}] + [rank_arrays(tensors, self.config, plan, rank) for rank in range(1, plan.world)]
            dist.scatter_object_list([None], parts, src=0, group=self.link.group)
        weakref.finalize(state, self.link.forget, "state", state.handle)
        return state

    def bytes_for(self, tokens: int) -> int:
        """Bytes of a state of ``tokens`` tokens on one rank (rank 0 holds the largest share of the KV)."""
        return super().bytes_for(self.lm.shard_plan.shards.count_below(tokens, rank=0))

    def ranks_status(self) -> list[dict]:
        """Per rank: whether it runs, its process id, device and parameter bytes (never waits on a rank)."""
        plan = self.lm.shard_plan
        rows = [
            {
                "rank": 0,
                "alive": not self.link.closed,
                "pid": os.getpid(),
                "device": str(self.lm.device),
            }
        ]
        for rank, process in enumerate(self._workers.processes if self._workers else [], start=1):
            rows.append(
                {
                    "rank": rank,
                    "alive": process.is_alive() and not self.link.closed,
                    "pid": process.pid,
                    "device": rank_device(str(self.lm.device), rank),
                }
            )
        for row, size in zip(rows, self._weight_bytes, strict=False):
            row["weight_bytes"] = size
        return rows[: plan.world]

    def close(self) -> None:
        """Stop the worker ranks and leave the process group (idempotent)."""
        if self.link.closed:
            return
        try:
            self.link.stop()
        except RuntimeError:
            # A worker is gone already (its connection closed); stop the others below.
            self.link.closed = True
        for process in self._workers.processes if self._workers else []:
            process.join(30)
            if process.is_alive():
                process.kill()
        dist.destroy_process_group()
        if self._rendezvous is not None:
            self._rendezvous.cleanup()


def launch_sharded_model(
    path, world: int, *, device: str, dtype: str, chunk_size: int, block: int | None = None
) -> ShardedTorchModel:
    """Spawn ``world - 1`` worker ranks, join them as rank 0 here, load every rank's shard; return the port.

    NCCL on CUDA (rank r on ``cuda:r``), gloo on CPU. Raises ValueError when CUDA has fewer than ``world``
    devices; if rank 0 cannot load the model, the workers are stopped before the error propagates.
    """
    from .plan import ShardPlan

    if torch.device(device).type == "cuda" and torch.cuda.device_count() < world:
        raise ValueError(
            f"--tensor-parallel {world} needs {world} CUDA devices, found {torch.cuda.device_count()}"
        )
    rendezvous = tempfile.TemporaryDirectory(prefix="spl-ranks-")
    spec = LaunchSpec(
        path=str(path),
        world=world,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
        block=block or ShardPlan(0, world).block,
        init_method="file://" + os.path.join(rendezvous.name, "rendezvous"),
    )
    workers = mp.start_processes(
        worker_main, args=(spec,), nprocs=world - 1, join=False, start_method="spawn"
    )
    try:
        group = join_ranks(spec, 0)
        model = load_shard(spec, 0, group)
        weights = weight_bytes_of_ranks(model.lm, group)
    except BaseException:
        for process in workers.processes:
            process.kill()
        if dist.is_initialized():
            dist.destroy_process_group()
        rendezvous.cleanup()
        raise
    return ShardedTorchModel(model, RankLink(world, group), workers, rendezvous, weights)
