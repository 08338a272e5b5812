"""One streamed chat turn as the REPLs show it: thinking collapsed or expanded, the answer, the stats line.

Ctrl-C during a turn raises KeyboardInterrupt out of the stream loop; closing the stream closes the HTTP
connection, and the server then cancels the turn and restores the session to its state before it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import attrs

from ..infra.client import ApiError, Client
from ..infra.terminal import columns, fit_tail

__all__ = ["TurnStats", "TurnView", "TurnResult", "run_turn", "dim", "printable"]

DIM, RESET, CLEAR_LINE = "\x1b[2m", "\x1b[0m", "\r\x1b[K"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Drop control characters (but newline and tab) from model text, so it cannot drive the terminal."""
    return _CONTROL.sub("", text)


def dim(text: str, color: bool) -> str:
    """Wrap `text` in the terminal's dim style when colour is on."""
    return f"{DIM}{text}{RESET}" if color and text else text


@attrs.define
class TurnStats:
    """Metrics of one turn, shown after each answer and by /stats."""

    ttft: float = 0.0
    seconds: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None

    def rate(self) -> float:
        """Decode speed: completion tokens over the time after the first token."""
        decode = self.seconds - self.ttft
        return self.completion_tokens / decode if decode > 0 else 0.0

    def line(self) -> str:
        return (f"ttft={self.ttft * 1000:.0f}ms tok/s={self.rate():.1f} prompt={self.prompt_tokens} "
                f"cached={self.cached_tokens} completion={self.completion_tokens} "
                f"reasoning={self.reasoning_tokens} finish={self.finish_reason or '-'}")

    def take_usage(self, usage: dict) -> None:
        self.prompt_tokens = usage.get("prompt_tokens", 0)
        self.completion_tokens = usage.get("completion_tokens", 0)
        self.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        self.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)


@attrs.define(eq=False)
class TurnView:
    """Draw one answer as it streams.

    Thinking is dimmed. Expanded, it streams in full; collapsed (the default), a terminal shows one line
    with its latest words, redrawn in place, and after the thinking ends a one-line summary stays instead.
    """

    write: Callable[[str], object]
    color: bool = False
    live: bool = False
    expand_thinking: bool = False
    clock: Callable[[], float] = time.monotonic
    mode: str | None = None
    thinking: list[str] = attrs.Factory(list)
    content: list[str] = attrs.Factory(list)
    _think_start: float = 0.0
    _drawn: float = 0.0

    def on_reasoning(self, text: str) -> None:
        if self.mode != "thinking":
            self._think_start = self.clock()
            self.mode = "thinking"
            if self.expand_thinking:
                self.write("thinking: ")
        self.thinking.append(text)
        if self.expand_thinking:
            self.write(dim(printable(text), self.color))
        elif self.live and self.clock() - self._drawn > 0.08:
            self._drawn = self.clock()
            flat = "".join(c for c in " ".join("".join(self.thinking).split()) if c.isprintable())
            tail = fit_tail(flat, max(10, min(60, columns() - 14)))
            self.write(CLEAR_LINE + dim(f"thinking... {tail}", self.color))

    def on_content(self, text: str) -> None:
        if self.mode != "answer":
            self._end_thinking()
            self.write("assistant: ")
            self.mode = "answer"
        self.content.append(text)
        self.write(printable(text))

    def _end_thinking(self) -> None:
        if self.mode != "thinking":
            return
        if self.expand_thinking:
            self.write("\n")
            return
        chars = len("".join(self.thinking))
        seconds = self.clock() - self._think_start
        summary = f"thinking: {chars} chars in {seconds:.1f}s (collapsed; /think show expands it)"
        self.write((CLEAR_LINE if self.live else "") + dim(summary, self.color) + "\n")

    def finish(self, stats: TurnStats) -> None:
        self._end_thinking()
        if self.mode == "answer":
            self.write("\n")
        self.write(dim(stats.line(), self.color) + "\n")

    def cancelled(self, kept: bool = False) -> None:
        """Report Ctrl-C; `kept`: the server had already finished the turn, so the session holds it."""
        if self.live and self.mode == "thinking" and not self.expand_thinking:
            self.write(CLEAR_LINE)
        elif self.mode:
            self.write("\n")
        if kept:
            self.write("(interrupted after the turn had finished; the session keeps it)\n")
        else:
            self.write("(cancelled; the session is unchanged)\n")


@attrs.frozen
class TurnResult:
    stats: TurnStats
    reasoning: str
    content: str


def _message_count(client: Client, session_id: str, clock, sleep, wait_busy: float) -> int | None:
    """The session's message count once no turn is running on it (waiting up to `wait_busy` seconds);
    None when the server can't say."""
    deadline = clock() + wait_busy
    while True:
        try:
            info = client.get("v1", "sessions", session_id)
        except ApiError:
            return None
        if not info.get("busy") or clock() >= deadline:
            return info.get("message_count")
        sleep(0.1)


def _open_stream(client: Client, body: dict, wait_busy: float, clock, sleep):
    """Start the stream; while an earlier cancelled turn is still unwinding (409 session_busy), retry."""
    deadline = clock() + wait_busy
    while True:
        stream = client.stream_chat(body)
        try:
            first = next(stream, None)
            return stream, first
        except ApiError as exc:
            stream.close()
            if exc.code != "session_busy" or clock() > deadline:
                raise
            sleep(0.2)


def run_turn(client: Client, body: dict, view: TurnView, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, wait_busy: float = 10.0) -> TurnResult:
    """Stream one turn into `view`; on Ctrl-C, close the stream, report it, and re-raise."""
    stats = TurnStats()
    session_id = body.get("session_id")
    before = _message_count(client, session_id, clock, sleep, 0.0) if session_id else None
    start = clock()
    stream, chunk = _open_stream(client, {**body, "stream_options": {"include_usage": True}}, wait_busy,
                                 clock, sleep)
    try:
        while chunk is not None:
            _take(chunk, view, stats, start, clock)
            chunk = next(stream, None)
    except KeyboardInterrupt:
        stream.close()
        # The turn may have ended on the server just before the connection closed: then it is kept, and
        # saying "unchanged" would be false. The session's message count, once it settles, tells.
        after = _message_count(client, session_id, clock, sleep, wait_busy) if before is not None else None
        view.cancelled(kept=after is not None and after > before)
        raise
    finally:
        stream.close()
    stats.seconds = clock() - start
    view.finish(stats)
    return TurnResult(stats, "".join(view.thinking), "".join(view.content))


def _take(chunk: dict, view: TurnView, stats: TurnStats, start: float, clock) -> None:
    if chunk.get("usage"):
        stats.take_usage(chunk["usage"])
    for choice in chunk.get("choices", []):
        delta = choice.get("delta") or {}
        for key, show in (("reasoning_content", view.on_reasoning), ("content", view.on_content)):
            if delta.get(key):
                if not stats.ttft:
                    stats.ttft = clock() - start
                show(delta[key])
        if choice.get("finish_reason"):
            stats.finish_reason = choice["finish_reason"]
