"""`TorchModel`: the ModelPort over the hybrid PyTorch model (Nemotron-H / superlinear-exp)."""

from __future__ import annotations

import functools
import hashlib
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from superlinear.core.errors import ContextLengthExceeded, InvalidRequest, SnapshotError
from superlinear.core.ports.model import RowRejected
from superlinear.core.values import ModelInfo, RawLogprob, SamplingParams

from .hub import repo_id_of_snapshot
from .hybrid.batch import decode_step
from .hybrid.batch_graphs import BatchedGraphs
from .hybrid.config import HybridConfig, parse_config_text
from .hybrid.graphs import GraphedDecoder, graphable
from .hybrid.kinds import state_nbytes
from .hybrid.loader import DEFAULT_Q1_ALIASES, load_model, weights_fingerprint
from .hybrid.model import HybridLM
from .hybrid.prompt_batch import batchable, prompt_step
from .hybrid.published import published_arrays
from .hybrid.random_weights import is_random_checkpoint, load_random
from .hybrid.state import HybridState, StateCheckpoint
from .logits import biased_logits, mask_disallowed, token_logprobs

__all__ = ["TorchModel", "DEFAULT_MODEL_DIR", "resolve_dtype", "sample_token"]

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_CHUNK_SIZE = 8192
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}

_F = TypeVar("_F", bound=Callable[..., Any])


def _inference(method: _F) -> _F:
    """Run a method under torch.inference_mode; every method touching state tensors uses it, so they mix."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map "float32"/"bfloat16"/"float16" (or fp32/bf16/fp16, or a torch.dtype) to a torch.dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}")
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


class TorchModel:
    """A hybrid LM whose per-sequence state (`HybridState`) the caller owns; satisfies `ModelPort`."""

    def __init__(
        self, lm: HybridLM, *, name: str, fingerprint: Mapping[str, str], chunk_size: int = DEFAULT_CHUNK_SIZE
    ):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.lm = lm
        self.config: HybridConfig = lm.config
        self.chunk_size = chunk_size
        self._info = ModelInfo(
            name=name,
            vocab_size=self.config.vocab_size,
            max_seq_len=self.config.max_position_embeddings,
            fingerprint=dict(fingerprint),
            device=str(lm.device),
            dtype=str(lm.dtype).removeprefix("torch."),
        )
        # On CUDA a one-token append is one graph replay (SUPERLINEAR_CUDA_GRAPHS=0 turns that off).
        use_graphs = graphable(lm) and os.environ.get("SUPERLINEAR_CUDA_GRAPHS", "1") != "0"
        self.graphs: GraphedDecoder | None = GraphedDecoder(lm) if use_graphs else None
        # ... and a batched decode step one replay per batch-size bucket (hybrid/batch_graphs.py).
        self.batch_graphs: BatchedGraphs | None = BatchedGraphs(lm) if use_graphs else None

    @classmethod
    def from_dir(
        cls,
        path: str | Path = DEFAULT_MODEL_DIR,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        name: str | None = None,
        q1_aliases: Sequence[str] = DEFAULT_Q1_ALIASES,
        load_lm: Callable[..., HybridLM] | None = None,
    ) -> TorchModel:
        """Load an HF checkpoint directory (config.json + safetensors) onto `device` in `dtype`.

        A directory with a random-weights marker instead of safetensors (hybrid/random_weights.py) gets
        random weights drawn on the device; that is refused unless SPL_ALLOW_RANDOM_WEIGHTS=1.
        `load_lm(path, cfg, dtype=, device=, q1_aliases=)` replaces the safetensors load (a sharded
        model loads only its rank's share); the fingerprint is the checkpoint's either way.
        """
        path = Path(path)
        config_bytes = (path / "config.json").read_bytes()
        raw = parse_config_text(config_bytes.decode("utf-8"))
        cfg = HybridConfig.from_dict(raw)
        torch_dtype = resolve_dtype(dtype)
        if is_random_checkpoint(path):  # benchmarks only: refused unless SPL_ALLOW_RANDOM_WEIGHTS=1
            lm, weights_id = load_random(path, cfg, dtype=torch_dtype, device=device)
        elif load_lm is not None:
            lm = load_lm(path, cfg, dtype=torch_dtype, device=device, q1_aliases=q1_aliases)
            weights_id = weights_fingerprint(path)
        else:
            lm, _ = load_model(path, cfg, dtype=torch_dtype, device=device, q1_aliases=q1_aliases)
            weights_id = weights_fingerprint(path)
        fingerprint = {
            "model_type": cfg.model_type,
            "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
            "weights_sha256": weights_id,
            "dtype": str(torch_dtype).removeprefix("torch."),
            "kernel": _kernel_id(cfg),
        }
        model_name = name or repo_id_of_snapshot(path) or raw.get("_name_or_path") or path.resolve().name
        return cls(lm, name=str(model_name), fingerprint=fingerprint, chunk_size=chunk_size)

    @property
    def info(self) -> ModelInfo:
        """Describe the model: name, vocabulary, default max length, fingerprint."""
        return self._info

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.config.eos_token_ids

    @_inference
    def new_state(self, max_seq_len: int) -> HybridState:
        """Create an empty state that may grow up to `max_seq_len` tokens (memory grows with use)."""
        return HybridState.empty(self.config, max_seq_len, device=self.lm.device, dtype=self.lm.dtype)

    @_inference
    def append(self, state: HybridState, token_ids: Sequence[int]) -> None:
        """Prefill `token_ids` in chunks of `chunk_size`, extending the state and its next-token logits."""
        ids = list(token_ids)
        if not ids:
            return
        self._check_append(state, ids)
        if len(ids) == 1 and self.graphs is not None:
            self.graphs.step(state, ids[0])
            return
        tensor = torch.tensor(ids, dtype=torch.long, device=self.lm.device)[None]
        for start in range(0, len(ids), self.chunk_size):
            self.lm(tensor[:, start : start + self.chunk_size], state, last_only=True)

    def _check_append(self, state: HybridState, ids: Sequence[int]) -> None:
        """Raise what `append` raises for `ids` on `state`, before anything runs."""
        if state.cursor + len(ids) > state.max_seq_len:
            raise ContextLengthExceeded(
                f"{state.cursor} tokens held + {len(ids)} new exceed the maximum of {state.max_seq_len}"
            )
        vocab = self.config.vocab_size
        bad = [t for t in ids if not isinstance(t, int) or not 0 <= t < vocab]
        if bad:
            raise InvalidRequest(f"token ids outside the vocabulary [0, {vocab}): {bad[:5]}")

    def _check_rows(self, states: Sequence[HybridState], runs: Sequence[Sequence[int]]) -> None:
        """Check a batch before anything runs: one run per distinct state, each as `append` checks it (a bad
        row raises `RowRejected` naming it)."""
        if len(states) != len(runs):
            raise ValueError(f"{len(states)} states but {len(runs)} runs")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("a state appears twice in one batch")
        for row, (state, run) in enumerate(zip(states, runs, strict=True)):
            try:
                self._check_append(state, run)
            except (ContextLengthExceeded, InvalidRequest) as exc:
                raise RowRejected(row, exc) from exc

    @_inference
    def append_batch(self, states: Sequence[HybridState], runs: Sequence[Sequence[int]]) -> None:
        """Append `runs[b]` to `states[b]` for every b; as `append` on each (to fp32 rounding).

        The runs of 2 .. chunk_size tokens share one forward (hybrid/prompt_batch.py; on CPU and CUDA,
        see `batchable`) and one-token runs one decode step (on CUDA a graph replay); a row alone or a
        longer run runs `append`. Every row is checked first: a bad row raises `RowRejected` naming it,
        and no state has changed.
        """
        self._check_rows(states, runs)
        together = batchable(self.lm)
        singles = [b for b, run in enumerate(runs) if len(run) == 1] if together else []
        prompts = [b for b, run in enumerate(runs) if 1 < len(run) <= self.chunk_size] if together else []
        if len(singles) > 1:
            self._decode_rows([states[b] for b in singles], [runs[b][0] for b in singles])
        if len(prompts) > 1:
            prompt_step(self.lm, [states[b] for b in prompts], [runs[b] for b in prompts])
        batched = {b for group in (singles, prompts) if len(group) > 1 for b in group}
        for b, (state, run) in enumerate(zip(states, runs, strict=True)):
            if b not in batched:
                self.append(state, run)

    @_inference
    def decode_batch(self, states: Sequence[HybridState], token_ids: Sequence[int]) -> None:
        """Append one token to each state in one batched forward (states of any lengths); as `append` each.

        Every row is checked before the forward: a bad row raises `RowRejected` naming it, and no state
        has changed. On CUDA (unless SUPERLINEAR_CUDA_GRAPHS=0) the step is a graph replay of the batch
        padded to its bucket, at most the largest bucket of rows a replay.
        """
        if len(states) != len(token_ids):
            raise ValueError(f"{len(states)} states but {len(token_ids)} tokens")
        self._check_rows(states, [[tid] for tid in token_ids])
        self._decode_rows(states, token_ids)

    def _decode_rows(self, states: Sequence[HybridState], token_ids: Sequence[int]) -> None:
        """One token per (checked, distinct) state: graph replays per bucket, or one eager batched step."""
        if self.batch_graphs is not None:
            step = self.batch_graphs.largest
            for start in range(0, len(states), step):
                self.batch_graphs.step(states[start : start + step], token_ids[start : start + step])
        elif states:
            decode_step(self.lm, states, token_ids)

    def sample(self, state: HybridState, params: SamplingParams, rng: random.Random,
               allowed: bytes | None = None) -> int:
        """Choose the next token from the state's logits: argmax at temperature 0, else seeded sampling;
        only ids a grammar's `allowed` bitmask allows."""
        if state.logits is None:
            raise InvalidRequest("the state has no next-token logits (it holds no tokens, or was imported "
                                 "without them and nothing was appended since), so there is nothing to sample from")
        return sample_token(state.logits, params, rng, allowed)

    def token_logprobs(self, state: HybridState, params: SamplingParams, token_id: int, top_n: int) -> RawLogprob:
        """`token_id`'s log-probability under the state's logits (logit_bias added, before temperature)."""
        if state.logits is None:
            raise InvalidRequest("the state has no next-token logits (it holds no tokens, or was imported "
                                 "without them), so there are no log-probabilities")
        return token_logprobs(state.logits, params, token_id, top_n)

    def length(self, state: HybridState) -> int:
        """Return the number of tokens the state holds."""
        return state.cursor

    def max_len(self, state: HybridState) -> int:
        """Return the state's maximum length."""
        return state.max_seq_len

    @_inference
    def resize(self, state: HybridState, max_seq_len: int) -> None:
        """Change the maximum length; a request below the tokens held stops at the tokens held."""
        state.resize(max(max_seq_len, state.cursor, 1))

    def nbytes(self, state: HybridState) -> int:
        """Return the bytes the state occupies now."""
        return state.nbytes()

    def bytes_for(self, tokens: int) -> int:
        """Return the bytes of a state holding `tokens` tokens at exactly that KV capacity.

        Buffers grow 2x when they fill, so a live state may hold up to twice the KV part of this.
        """
        return state_nbytes(self.config, tokens, self.lm.dtype) + self.config.vocab_size * 4

    @_inference
    def checkpoint(self, state: HybridState) -> StateCheckpoint:
        """Capture cursor, recurrent state and logits so `restore` can undo later appends."""
        return state.checkpoint()

    @_inference
    def restore(self, state: HybridState, checkpoint: StateCheckpoint) -> None:
        """Return the state exactly to a checkpoint taken from it."""
        state.restore(checkpoint)

    @_inference
    def fork(self, state: HybridState) -> HybridState:
        """Return an independent copy of the state."""
        return state.fork()

    def export_state(self, state: HybridState) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield the state as named CPU tensors, one at a time."""
        # No inference_mode here: a generator would leak the mode into the caller between items, and
        # reading inference tensors needs none.
        yield from state.export()

    @_inference
    def import_state(self, arrays: Mapping[str, Any], max_seq_len: int) -> HybridState:
        """Build a state from `export_state` arrays; raise SnapshotError if they don't fit this model."""
        tensors = {name: torch.as_tensor(value) for name, value in arrays.items()}
        try:
            return HybridState.from_arrays(
                self.config, tensors, max_seq_len=max_seq_len, device=self.lm.device, dtype=self.lm.dtype
            )
        except ValueError as exc:
            if "max_seq_len" in str(exc):
                raise ContextLengthExceeded(str(exc)) from exc
            raise SnapshotError(f"state arrays don't fit this model: {exc}") from exc

    def published_arrays(self, payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Re-lay a published server's cache payload as `import_state` arrays (no logits); raise
        SnapshotError naming what doesn't fit this model."""
        try:
            return published_arrays(self.config, payload)
        except ValueError as exc:
            raise SnapshotError(f"the published snapshot doesn't fit the loaded model: {exc}") from exc

    def release(self, state: HybridState) -> None:
        """Free the state's memory now."""
        state.release()


def sample_token(logits: torch.Tensor, params: SamplingParams, rng: random.Random,
                 allowed: bytes | None = None) -> int:
    """Pick a token id from `logits` [V]: greedy argmax, or temperature / top-k / top-p sampling.

    The torch generator is seeded from `rng` on every call, so the same seed gives the same tokens.
    `params.logit_bias` is added first; ids outside a grammar's `allowed` bitmask get -inf.
    """
    logits = biased_logits(logits, params)
    if allowed is not None:
        logits = mask_disallowed(logits, allowed)
    if params.greedy:
        return int(torch.argmax(logits))
    # Shift before scaling so a tiny temperature gives -inf for the others, never inf - inf = NaN.
    scaled = (logits - logits.max()) / params.temperature
    if 0 < params.top_k < scaled.numel():
        kth = torch.topk(scaled, params.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, -torch.inf)
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = torch.cumsum(sorted_probs, dim=0) - sorted_probs >= params.top_p
        drop[0] = False
        probs = probs.scatter(0, order[drop], 0.0)
    generator = torch.Generator().manual_seed(rng.getrandbits(63))
    return int(torch.multinomial(probs, 1, generator=generator))


def _kernel_id(cfg: HybridConfig) -> str:
    """Name the attention computation; snapshots made under other kernel parameters must not mix."""
    return "dense" if cfg.superlinear is None else cfg.superlinear.fingerprint
