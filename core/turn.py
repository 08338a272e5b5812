"""The chat turn use case: prefill only what is new, generate, then commit or restore."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import attrs

from .errors import ContextLengthExceeded, InvalidRequest
from .generation import Generation, GenerationOutcome
from .ports import GrammarPort, ModelPort, StopRule, TokenizerPort, TokenMatcher
from .prompt import canonical_assistant_text, closing_text, plan_prompt, split_new_messages
from .scheduler import Feed, Steps
from .session import Session, TurnMark
from .values import ChatRequest, Message, PrefillProgress, SamplingParams, StreamEvent, Usage

__all__ = ["TurnRunner", "PreparedTurn"]


@attrs.frozen
class PreparedTurn:
    """A validated turn: the new messages and the exact ids to prefill."""

    session: Session
    request: ChatRequest
    new: tuple[Message, ...]
    kwargs: dict[str, Any]
    context_ids: list[int]
    gen_ids: list[int]
    gen_text: str
    room: int
    # The grammar's matcher when the request constrains the answer.
    matcher: TokenMatcher | None = None


@attrs.define(eq=False)
class TurnRunner:
    """Run chat turns against sessions. A turn is atomic: any error or cancellation restores the session."""

    model: ModelPort
    tok: TokenizerPort
    stop_rules: Callable[[ChatRequest], Sequence[StopRule]]
    now: Callable[[], float]
    entropy: Callable[[], int]
    # Splits tool calls out of an answer (content, calls) when the request offered tools; None: keep the text.
    reply_parser: Callable[[str], tuple[str, tuple[Any, ...]]] | None = None
    max_prompt_tokens: int | None = None
    grammars: GrammarPort | None = None
    # Prefill new context in pieces of this many tokens (the model's own chunk size, so the work is the same)
    # and publish progress between them on `session.prefill`; None: one piece.
    prefill_chunk: int | None = None

    def prepare(self, session: Session, request: ChatRequest) -> PreparedTurn:
        """Validate and tokenize a turn without touching the model; raise on bad input."""
        self._check_logit_bias(request)
        new = split_new_messages(session.transcript, request.messages)
        kwargs = dict(request.template_kwargs)
        plan = plan_prompt(self.tok, session.transcript, new, session.trailer, kwargs)
        context_ids = self.tok.encode(plan.context)
        gen_ids = self.tok.encode(plan.generation)
        prompt_len = session.held + len(context_ids) + len(gen_ids)
        if self.max_prompt_tokens is not None and prompt_len > self.max_prompt_tokens:
            raise ContextLengthExceeded(
                f"the prompt has {prompt_len} tokens; this server accepts at most {self.max_prompt_tokens} "
                "(--max-prompt-tokens)",
                param="messages",
            )
        room = self.model.max_len(session.state) - prompt_len
        if room < 1:
            raise ContextLengthExceeded(
                f"the prompt needs {prompt_len} tokens and leaves no room to answer in a session of "
                f"{self.model.max_len(session.state)} tokens",
                param="messages",
            )
        return PreparedTurn(session, request, new, kwargs, context_ids, gen_ids, plan.generation, room,
                            self.matcher(request.sampling))

    def matcher(self, params: SamplingParams) -> TokenMatcher | None:
        """A fresh matcher for the request's grammar; a 400 when it can't be enforced."""
        grammar = params.grammar
        if grammar is None:
            return None
        if self.grammars is None:
            raise InvalidRequest("structured output is not available on this server (no grammar library)",
                                 param=grammar.param)
        return self.grammars.matcher(grammar)

    def _check_logit_bias(self, request: ChatRequest) -> None:
        vocab = self.model.info.vocab_size
        bad = [tid for tid, _ in request.sampling.logit_bias if tid >= vocab]
        if bad:
            raise InvalidRequest(f"logit_bias names token {bad[0]}, outside the vocabulary of {vocab} ids",
                                 param="logit_bias")

    def run(self, turn: PreparedTurn) -> Steps:
        """Yield the turn's events and its model work (feeds, for the engine); the last event is "done".

        The engine prefills in pieces between other turns' steps and ends a cancelled turn between them, so
        a long prefill stops within one piece of a cancel.
        """
        session = turn.session
        cached = session.held
        start = session.checkpoint(self.model)
        try:
            out = yield from self._run(turn)
        except BaseException:
            session.restore(self.model, start)
            raise
        session.mark_turn(self.model, self.now())
        usage = Usage(
            prompt_tokens=cached + len(turn.context_ids) + len(turn.gen_ids),
            completion_tokens=out.completion_tokens,
            cached_tokens=cached,
            reasoning_tokens=out.reasoning_tokens,
        )
        yield StreamEvent("done", finish_reason=out.finish_reason, usage=usage)

    def _run(self, turn: PreparedTurn) -> Generator[StreamEvent | Feed, None, GenerationOutcome]:
        """Prefill, generate and commit; yield text events and return the generation's outcome."""
        session, request, kwargs = turn.session, turn.request, turn.kwargs
        yield from self._prefill(session, turn.context_ids)
        after_context = session.checkpoint(self.model)
        yield from session.feed(self.model, turn.gen_ids)
        gen_text, room, new = turn.gen_text, turn.room, turn.new
        gen = Generation(
            model=self.model,
            tok=self.tok,
            state=session.state,
            params=request.sampling,
            rules=self.stop_rules(request),
            rng=random.Random(request.sampling.seed if request.sampling.seed is not None else self.entropy()),
            thinking=bool(self.tok.think_open) and gen_text.rstrip().endswith(self.tok.think_open or ""),
            max_new=min(request.sampling.max_tokens, room),
            matcher=turn.matcher,
        )
        yield from gen.run()
        session.took(gen.out.fed_ids)
        reply = self._reply(gen.out, request)
        before = [*session.transcript, *new]
        if (gen.out.reasoning and request.discard_thinking) or gen.out.specials_dropped:
            # The state then holds the reply as the template renders it, as the transcript says.
            yield from self._rewrite_without_thinking(session, after_context, before, reply, kwargs)
        transcript = [*before, reply]
        session.close_turn(transcript, closing_text(self.tok, transcript, kwargs))
        return gen.out

    def _prefill(self, session: Session, ids: list[int]) -> Iterator[Feed]:
        """Have the engine prefill the new context, keeping `session.prefill` up to date until it is done.

        The engine feeds it in pieces of at most `prefill_chunk` tokens (and its own per-step budget) and
        reports each piece before running it; the progress counts those pieces.
        """
        start, pieces = self.now(), [0]

        def progress(done: int, cap: int) -> None:
            elapsed, i = self.now() - start, pieces[0]
            pieces[0] += 1
            rate = done / elapsed if done and elapsed > 0 else 0.0
            session.prefill = PrefillProgress(done, len(ids), i, i + -(-(len(ids) - done) // cap), rate)

        try:
            yield from session.feed(self.model, ids, chunk=self.prefill_chunk, progress=progress)
        finally:
            session.prefill = None

    def _rewrite_without_thinking(self, session: Session, after_context: TurnMark, before: list[Message],
                                  reply: Message, kwargs: dict[str, Any]) -> Iterator[Feed]:
        """Replace the generated message in the state by its template rendering, which drops thinking."""
        session.restore(self.model, after_context)
        text = canonical_assistant_text(self.tok, before, reply, kwargs)
        yield from session.feed(self.model, self.tok.encode(text))

    def _reply(self, out: GenerationOutcome, request: ChatRequest) -> Message:
        """The assistant message as clients will send it back: tool calls apart from the text."""
        content, calls = out.content, ()
        if self.reply_parser is not None and request.template_kwargs.get("tools"):
            content, calls = self.reply_parser(out.content)
        return Message(role="assistant", content=content, reasoning_content=out.reasoning or None,
                       tool_calls=tuple(calls))
