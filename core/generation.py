"""The decode loop: sample, feed, split thinking from the answer, apply stop rules."""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import attrs

from .logprobs import describe
from .ports import ModelPort, StopRule, TokenizerPort, TokenMatcher
from .scheduler import Feed
from .values import SamplingParams, StreamEvent, TokenLogprob

__all__ = ["Generation", "GenerationOutcome"]


@attrs.define
class GenerationOutcome:
    """What a finished generation produced."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str = "length"
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    fed_ids: list[int] = attrs.Factory(list)
    # Special tokens the model emitted in its answer: fed to the state, kept out of `content`.
    specials_dropped: int = 0


@attrs.define(eq=False)
class Generation:
    """Generate one assistant message into `state`, yielding text events as they become final.

    Every sampled token except an end-of-turn token is fed to the model, so the state holds the whole
    answer. Stop rules see the answer text; text a rule holds back (a stop string may be starting) is
    released once it is safe, and trimmed text never reaches the caller.
    """

    model: ModelPort
    tok: TokenizerPort
    state: Any
    params: SamplingParams
    rules: Sequence[StopRule]
    rng: random.Random
    thinking: bool
    max_new: int
    # False: a thought marker is text like any other (text completions have no thinking split).
    think_tags: bool = True
    # Constrains the answer (not the thinking) to a grammar; None: free text.
    matcher: TokenMatcher | None = None
    out: GenerationOutcome = attrs.Factory(GenerationOutcome)
    _decoder: Any = None
    _shown: int = 0
    _rule_stopped: bool = False
    # Answer tokens' log-probabilities not yet released, each with the content length after its text.
    _logprobs: list[tuple[int, TokenLogprob]] = attrs.Factory(list)

    def run(self) -> Iterator[StreamEvent | Feed]:
        """Yield reasoning and content events (and feeds for the engine) until a stop; outcome in `self.out`."""
        self._decoder = self.tok.decoder()
        eos = self.tok.eos_token_ids
        close_id = self._id(self.tok.think_close)
        open_id = self._id(self.tok.think_open)
        while self.out.completion_tokens < self.max_new:
            constrained = self.matcher is not None and not self.thinking
            allowed = self.matcher.allowed() if constrained and self.matcher is not None else None
            tid = self.model.sample(self.state, self.params, self.rng, allowed)
            if constrained and self.matcher is not None:
                self.matcher.advance(tid)
            logprob = self._logprob(tid)
            self.out.completion_tokens += 1
            if tid in eos:
                self.out.finish_reason = "stop"
                break
            # A token's text goes out before the engine feeds it, so clients see it one step sooner.
            if self.thinking:
                close = yield from self._think_step(tid, close_id)
                yield from self._feed([tid])
                if close:
                    # The engine closes the thinking block itself so the answer follows within the budget.
                    yield from self._feed(self.tok.encode(self.tok.think_close or ""))
                    self._end_thinking()
                continue
            if tid == open_id and not self.out.content and self.think_tags:
                yield from self._feed([tid])
                self.thinking = True
                continue
            stop = yield from self._answer_step(tid, logprob)
            yield from self._feed([tid])
            if stop:
                break
        else:
            self.out.finish_reason = "length"
        yield from self._release_all()

    def _logprob(self, tid: int) -> TokenLogprob | None:
        """The token's log-probability, read before it is fed (from the logits it was chosen from)."""
        if self.params.logprobs is None or self.thinking:
            return None
        return describe(self.tok, self.model.token_logprobs(self.state, self.params, tid, self.params.logprobs))

    def _id(self, text: str | None) -> int | None:
        return self.tok.token_id(text) if text else None

    def _feed(self, ids: list[int]) -> Iterator[Feed]:
        """Ask the engine to run `ids` through the state (batched with other turns' tokens)."""
        yield Feed(self.model, self.state, ids)
        self.out.fed_ids.extend(ids)

    def _think_step(self, tid: int, close_id: int | None) -> Generator[StreamEvent, None, bool]:
        """Yield the thinking token's text; return True when the reasoning budget is spent."""
        self.out.reasoning_tokens += 1
        if tid == close_id:
            self._end_thinking()
            return False
        text = "" if tid in self.tok.special_ids else self._decoder.push(tid)
        if text:
            self.out.reasoning += text
            yield StreamEvent("reasoning", text)
        budget = self.params.reasoning_budget
        return budget is not None and self.out.reasoning_tokens >= budget

    def _end_thinking(self) -> None:
        rest = self._decoder.flush()
        self.out.reasoning += rest
        self.thinking = False
        self._decoder = self.tok.decoder()

    def _answer_step(self, tid: int, logprob: TokenLogprob | None) -> Generator[StreamEvent, None, bool]:
        # A special token the model emits is fed (the state holds it) but is no part of the text.
        special = tid in self.tok.special_ids
        if special:
            self.out.specials_dropped += 1
        else:
            self.out.content += self._decoder.push(tid)
        if logprob is not None and not special:
            self._logprobs.append((len(self.out.content), logprob))
        hold = 0
        for rule in self.rules:
            verdict = rule.observe(tid, self.out.content)
            if verdict.stop:
                if verdict.trim:
                    self.out.content = self.out.content[: len(self.out.content) - verdict.trim]
                self.out.finish_reason = verdict.reason or "stop"
                self._rule_stopped = True
                return True
            hold = max(hold, verdict.hold)
        yield from self._release(len(self.out.content) - hold)
        return False

    def _release(self, upto: int, final: bool = False) -> Iterator[StreamEvent]:
        """Release content up to `upto`, with the log-probabilities of the tokens whose text ends there.

        At the end, tokens of trimmed text (a stop string) are left out."""
        ready = [lp for end, lp in self._logprobs if end <= upto]
        if upto > self._shown or (final and ready):
            text = self.out.content[self._shown : upto]
            self._shown = upto
            del self._logprobs[: len(ready)]
            yield StreamEvent("content", text, logprobs=tuple(ready))

    def _release_all(self) -> Iterator[StreamEvent]:
        tail = self._decoder.flush() if self._decoder else ""
        if self.thinking:
            self.out.reasoning += tail
            if tail:
                yield StreamEvent("reasoning", tail)
        elif tail and not self._rule_stopped:
            self.out.content += tail
        yield from self._release(len(self.out.content), final=True)
