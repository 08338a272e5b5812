"""In-memory fakes of the ports, for tests of the core without torch."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from .errors import Conflict, ContextLengthExceeded, NotFound
from .logprobs import logprobs_of
from .ports import SnapshotManifest
from .ports.model import RowRejected
from .values import Message, ModelInfo, RawLogprob, SamplingParams, SnapshotInfo

__all__ = ["FakeTokenizer", "FakeModel", "FakeState", "FakeSnapshotStore", "FixedClock", "SequentialIds"]

SPECIALS = ("<|endoftext|>", "<|im_end|>", "<|im_start|>", "<think>", "</think>")
_OFFSET = len(SPECIALS)


class FakeTokenizer:
    """One id per character (code point + 5), ids 0-4 are the ChatML and thinking specials."""

    def __init__(self, thinking_default: bool = True):
        self._thinking_default = thinking_default

    eos_token_ids = frozenset({1})
    special_ids = frozenset(range(_OFFSET))
    think_open = "<think>"
    think_close = "</think>"
    fingerprint = {"vocab": "fake-chars", "template": "fake-chatml"}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        i = 0
        while i < len(text):
            for sid, special in enumerate(SPECIALS):
                if text.startswith(special, i):
                    ids.append(sid)
                    i += len(special)
                    break
            else:
                ids.append(ord(text[i]) + _OFFSET)
                i += 1
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(SPECIALS[i] if i < _OFFSET else chr(i - _OFFSET) for i in ids)

    def token_id(self, text: str) -> int | None:
        return SPECIALS.index(text) if text in SPECIALS else None

    def decoder(self) -> _CharDecoder:
        return _CharDecoder(self)

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool, **kwargs: object) -> str:
        parts = []
        for m in messages:
            body = f"<think></think>{m.content}" if m.role == "assistant" else m.content
            parts.append(f"<|im_start|>{m.role}\n{body}<|im_end|>\n")
        if add_generation_prompt:
            thinking = kwargs.get("enable_thinking", self._thinking_default)
            parts.append("<|im_start|>assistant\n" + ("<think>\n" if thinking else "<think></think>"))
        return "".join(parts)


@attrs.define
class _CharDecoder:
    tok: FakeTokenizer

    def push(self, token_id: int) -> str:
        return self.tok.decode([token_id])

    def flush(self) -> str:
        return ""


@attrs.define(eq=False)
class FakeState:
    ids: list[int]
    cap: int
    released: bool = False
    pending: list[int] | None = None
    forced: int | None = None


class FakeModel:
    """A deterministic toy language model: the next token is a hash of everything the state holds.

    `script` (a list of strings) forces the replies, one per generation, for tests that need known
    text; otherwise tokens are printable ASCII drawn from the hash, ending with `<|im_end|>` after
    about `reply_len` tokens. `fail_at` makes `append` raise once the state reaches that length; `gate` (a semaphore) makes each
    `append` wait for a release (`decode_batch` is a loop of appends), so tests can hold a turn in flight.
    """

    def __init__(self, tok: FakeTokenizer | None = None, reply_len: int = 8, max_seq_len: int = 4096):
        self.tok = tok or FakeTokenizer()
        self.reply_len = reply_len
        self.script: list[str] = []
        self.fail_at: int | None = None
        self.gate = None
        self.appended = 0
        self.batch_sizes: list[int] = []
        self.prompt_batches: list[list[int]] = []
        self._info = ModelInfo(name="fake", vocab_size=0x110000 + _OFFSET, max_seq_len=max_seq_len,
                               fingerprint={"model": "fake-v1"})

    @property
    def info(self) -> ModelInfo:
        return self._info

    def new_state(self, max_seq_len: int) -> FakeState:
        return FakeState([], max_seq_len)

    def append(self, state: FakeState, token_ids: Sequence[int]) -> None:
        if self.gate is not None:
            self.gate.acquire(timeout=10)
        if len(state.ids) + len(token_ids) > state.cap:
            raise ContextLengthExceeded(f"state holds at most {state.cap} tokens")
        if self.fail_at is not None and len(state.ids) + len(token_ids) >= self.fail_at:
            raise RuntimeError("injected model failure")
        state.ids.extend(token_ids)
        self.appended += len(token_ids)

    def append_batch(self, states: Sequence[FakeState], runs: Sequence[Sequence[int]]) -> None:
        """Each run appended in turn, as one batch (its run lengths in `prompt_batches`); a run past its
        state's capacity is rejected (`RowRejected`) before any state changes."""
        self._reject_full(states, [len(run) for run in runs])
        self.prompt_batches.append([len(run) for run in runs])
        for state, run in zip(states, runs, strict=True):
            self.append(state, run)

    def decode_batch(self, states: Sequence[FakeState], token_ids: Sequence[int]) -> None:
        """One token per state; counted as one batch in `batches` (the row sizes in `batch_sizes`); a row
        past its state's capacity is rejected (`RowRejected`) before any state changes, as in append_batch."""
        self._reject_full(states, [1] * len(states))
        self.batch_sizes.append(len(states))
        for state, tid in zip(states, token_ids, strict=True):
            self.append(state, [tid])

    @staticmethod
    def _reject_full(states: Sequence[FakeState], counts: Sequence[int]) -> None:
        """Raise `RowRejected` for the first row whose state cannot take its count of new tokens."""
        for row, (state, count) in enumerate(zip(states, counts, strict=True)):
            if len(state.ids) + count > state.cap:
                raise RowRejected(row, ContextLengthExceeded(f"state holds at most {state.cap} tokens"))

    def _since_prompt(self, state: FakeState) -> int:
        n = 0
        for tid in reversed(state.ids):
            if tid == 2:
                return n
            n += 1
        return n

    def _logits(self, state: FakeState, params: SamplingParams) -> dict[int, float]:
        """The toy distribution: printable ASCII, the state's hash pick 3 nats ahead; only eos once the
        reply is long enough. logit_bias adds to it (an id outside it starts at -20)."""
        if self._since_prompt(state) >= self.reply_len + 12:
            table = {1: 0.0}
        else:
            table = {32 + k + _OFFSET: 0.0 for k in range(95)}
            digest = hashlib.sha256(repr(state.ids).encode()).digest()
            table[32 + digest[0] % 95 + _OFFSET] = 3.0
        for tid, bias in params.logit_bias:
            table[tid] = table.get(tid, -20.0) + bias
        return table

    def sample(self, state: FakeState, params: SamplingParams, rng: random.Random, allowed: bytes | None = None) -> int:
        if allowed is not None:
            state.forced = None
            return self._sample_from(self._allowed(state, params, allowed), params, rng)
        if state.pending is None and self.script:
            state.pending = self.tok.encode(self.script.pop(0)) + [1]
        state.forced = None
        if state.pending:
            tid = state.forced = state.pending.pop(0)
            if not state.pending:
                state.pending = None
            return tid
        return self._sample_from(self._logits(state, params), params, rng)

    def _allowed(self, state: FakeState, params: SamplingParams, allowed: bytes) -> dict[int, float]:
        """The toy distribution over the ids a grammar allows (every allowed id at least at -20)."""
        base = self._logits(state, params)
        ids = [i for i in range(len(allowed) * 8) if allowed[i // 8] >> (i % 8) & 1]
        return {i: max(base.get(i, -20.0), -20.0) for i in ids}

    @staticmethod
    def _sample_from(table: dict[int, float], params: SamplingParams, rng: random.Random) -> int:
        if params.greedy:
            return max(table, key=lambda t: (table[t], -t))
        peak = max(table.values())
        weights = {t: math.exp((v - peak) / params.temperature) for t, v in table.items()}
        point = rng.random() * sum(weights.values())
        for tid, weight in weights.items():
            point -= weight
            if point <= 0:
                return tid
        return tid

    def token_logprobs(self, state: FakeState, params: SamplingParams, token_id: int, top_n: int) -> RawLogprob:
        if state.forced == token_id:
            return RawLogprob(token_id, 0.0, ((token_id, 0.0),)[:top_n])
        return logprobs_of(self._logits(state, params), token_id, top_n)

    def length(self, state: FakeState) -> int:
        return len(state.ids)

    def max_len(self, state: FakeState) -> int:
        return state.cap

    def resize(self, state: FakeState, max_seq_len: int) -> None:
        state.cap = max(max_seq_len, len(state.ids))

    def nbytes(self, state: FakeState) -> int:
        return self.bytes_for(len(state.ids))

    def bytes_for(self, tokens: int) -> int:
        return 8 * tokens

    def checkpoint(self, state: FakeState) -> tuple[int, list[int] | None]:
        return len(state.ids), None if state.pending is None else list(state.pending)

    def restore(self, state: FakeState, checkpoint: tuple[int, list[int] | None]) -> None:
        del state.ids[checkpoint[0]:]
        state.pending = checkpoint[1]

    def fork(self, state: FakeState) -> FakeState:
        return FakeState(list(state.ids), state.cap)

    def export_state(self, state: FakeState) -> Iterator[tuple[str, list[int]]]:
        yield "ids", list(state.ids)

    def import_state(self, arrays: Mapping[str, list[int]], max_seq_len: int) -> FakeState:
        return FakeState(list(arrays["ids"]), max_seq_len)

    def release(self, state: FakeState) -> None:
        state.released = True


@attrs.define
class FixedClock:
    t: float = 1_700_000_000.0

    def now(self) -> float:
        self.t += 1.0
        return self.t


@attrs.define
class SequentialIds:
    n: int = 0

    def new_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:06d}"


class FakeSnapshotStore:
    """Snapshots kept in a dict; arrays are copied so later changes to a state can't leak in."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[SnapshotManifest, dict[str, list[Any]]]] = {}

    def save(self, manifest: SnapshotManifest, arrays: Iterable[tuple[str, Any]]) -> SnapshotInfo:
        if manifest.snapshot_id in self._items:
            raise Conflict(f"snapshot {manifest.snapshot_id!r} exists")
        data = {name: list(a) for name, a in arrays}
        self._items[manifest.snapshot_id] = (manifest, data)
        return SnapshotInfo(manifest.snapshot_id, manifest.created_at, manifest.title, manifest.description,
                            manifest.tags, len(manifest.ledger), 8 * sum(len(v) for v in data.values()),
                            manifest.model, len(manifest.transcript), manifest.max_seq_len)

    def load(self, snapshot_id: str) -> tuple[SnapshotManifest, dict[str, list[Any]]]:
        if snapshot_id not in self._items:
            raise NotFound(f"no snapshot {snapshot_id!r}")
        manifest, data = self._items[snapshot_id]
        return manifest, {k: list(v) for k, v in data.items()}

    def manifest(self, snapshot_id: str) -> SnapshotManifest:
        return self.load(snapshot_id)[0]

    def get(self, snapshot_id: str) -> SnapshotInfo:
        manifest, data = self.load(snapshot_id)
        return SnapshotInfo(manifest.snapshot_id, manifest.created_at, manifest.title, manifest.description,
                            manifest.tags, len(manifest.ledger), 8 * sum(len(v) for v in data.values()),
                            manifest.model, len(manifest.transcript), manifest.max_seq_len)

    def list(self) -> list[SnapshotInfo]:
        return sorted((self.get(i) for i in self._items), key=lambda x: -x.created_at)

    def patch(self, snapshot_id: str, **fields: Any) -> SnapshotInfo:
        manifest, data = self._items[snapshot_id]
        self._items[snapshot_id] = (attrs.evolve(manifest, **fields), data)
        return self.get(snapshot_id)

    def delete(self, snapshot_id: str) -> None:
        if self._items.pop(snapshot_id, None) is None:
            raise NotFound(f"no snapshot {snapshot_id!r}")
