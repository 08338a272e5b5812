"""Domain values that cross boundaries: requests, sampling, messages, events, usage, infos.

All are frozen attrs classes; token ids are plain ints. Nothing here knows about tensors or HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "Message",
    "SamplingParams",
    "Grammar",
    "RepetitionParams",
    "ChatRequest",
    "Usage",
    "StreamEvent",
    "RawLogprob",
    "TokenLogprob",
    "ModelInfo",
    "SessionInfo",
    "SnapshotInfo",
    "PrefillProgress",
]


def _calls_key(calls: tuple[Any, ...]) -> list[tuple[object, str]]:
    out = []
    for call in calls:
        fn = call.get("function", call) if isinstance(call, Mapping) else {}
        args = fn.get("arguments") if isinstance(fn, Mapping) else None
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        name = fn.get("name") if isinstance(fn, Mapping) else None
        out.append((name, json.dumps(args, sort_keys=True, ensure_ascii=False)))
    return out


@attrs.frozen
class Message:
    """One chat message as the template sees it."""

    role: str
    content: str = ""
    reasoning_content: str | None = None
    name: str | None = None
    tool_calls: tuple[Any, ...] = ()
    tool_call_id: str | None = None

    def same_as(self, other: Message) -> bool:
        """Say whether two messages are the same turn of a transcript: role, content and tool calls.

        Tool calls compare by function name and parsed arguments; their ids are the client's business.
        """
        return (
            self.role == other.role
            and self.content == other.content
            and _calls_key(self.tool_calls) == _calls_key(other.tool_calls)
        )


@attrs.frozen
class RepetitionParams:
    """Settings of the repetition stop rule."""

    enabled: bool = False
    tail_len: int = 1024
    min_repeats: int = 3
    max_period: int = 512
    min_unique_tokens: int = 1
    check_every: int = 1


@attrs.frozen
class Grammar:
    """What the answer must match: a JSON schema (`kind` "json_schema", `source` its JSON text) or a Lark
    grammar (`kind` "lark"). `strict`: a schema keyword the grammar library cannot enforce is an error,
    not a warning. `param` names the request field it came from, for error messages."""

    kind: str
    source: str
    strict: bool = False
    param: str = "response_format"


@attrs.frozen
class SamplingParams:
    """How the next tokens are chosen and when generation stops."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    reasoning_budget: int | None = None
    repetition: RepetitionParams = attrs.field(factory=RepetitionParams)
    # (token id, bias) pairs added to the logits before greedy choice or sampling; bias in [-100, 100].
    logit_bias: tuple[tuple[int, float], ...] = ()
    # None: no log-probabilities; n >= 0: each answer token's log-probability and the n most likely.
    logprobs: int | None = None
    # The answer (after any thinking) must match this; None: free text.
    grammar: Grammar | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@attrs.frozen
class ChatRequest:
    """A chat turn as the core sees it, already parsed by a frontend."""

    messages: tuple[Message, ...]
    sampling: SamplingParams = attrs.field(factory=SamplingParams)
    session_id: str | None = None
    template_kwargs: Mapping[str, object] = attrs.field(factory=dict)
    discard_thinking: bool = True


@attrs.frozen
class Usage:
    """Token accounting of one turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@attrs.frozen
class RawLogprob:
    """What a model reports for a chosen token: its log-probability and the `n` most likely ids."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@attrs.frozen
class TokenLogprob:
    """A chosen token as clients see it: its text, log-probability and the most likely alternatives."""

    token_id: int
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@attrs.frozen
class StreamEvent:
    """One step of a generation: a text delta, or the end with its reason and usage.

    `kind` is "content", "reasoning" or "done".
    """

    kind: str
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    # With SamplingParams.logprobs: the TokenLogprob of each token whose text this event releases.
    logprobs: tuple[Any, ...] = ()


@attrs.frozen
class ModelInfo:
    """What a loaded model says about itself."""

    name: str
    vocab_size: int
    max_seq_len: int
    fingerprint: Mapping[str, str] = attrs.field(factory=dict)
    device: str = "cpu"
    dtype: str = "float32"


@attrs.frozen
class PrefillProgress:
    """A prefill under way: tokens and chunks done of the total, and the rate so far (tokens per second)."""

    done: int
    total: int
    chunks_done: int
    chunks_total: int
    tokens_per_second: float = 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left at the rate so far; None before the first chunk has finished."""
        if self.tokens_per_second <= 0:
            return None
        return (self.total - self.done) / self.tokens_per_second


@attrs.frozen
class SessionInfo:
    """A session as management calls report it."""

    session_id: str
    created_at: float
    last_used_at: float
    cached_tokens: int
    max_seq_len: int
    message_count: int
    kv_bytes: int
    resident: bool
    busy: bool
    # Set while a turn prefills new context into the session (e.g. a long document), else None.
    prefill: PrefillProgress | None = None


@attrs.frozen
class SnapshotInfo:
    """A saved snapshot as list and get report it."""

    snapshot_id: str
    created_at: float
    title: str | None
    description: str | None
    tags: tuple[str, ...]
    tokens: int
    bytes: int
    model: Mapping[str, str] = attrs.field(factory=dict)
    message_count: int = 0
    max_seq_len: int = 0
