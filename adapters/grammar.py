"""The grammar adapter: JSON schemas and Lark grammars enforced token by token with llguidance.

llguidance compiles a grammar against the tokenizer's vocabulary and, at each step, gives the bitmask of
the ids that keep the text inside the grammar (computed on the CPU in microseconds to a millisecond;
see benchmarks/RESULTS.md). JSON comes out compact (no free whitespace), so a sampling model cannot
wander off into endless blanks.
"""

from __future__ import annotations

import threading

import llguidance

from superlinear.core.errors import InvalidRequest
from superlinear.core.values import Grammar

from .tokenizer import HFTokenizer

__all__ = ["LLGuidanceGrammars", "LLGuidanceMatcher"]

_JSON_OPTIONS = {"whitespace_flexible": False}


class LLGuidanceMatcher:
    """TokenMatcher over one `llguidance.LLMatcher`."""

    def __init__(self, matcher: llguidance.LLMatcher):
        self._m = matcher

    def allowed(self) -> bytes:
        """The bitmask of the ids allowed next (end-of-turn ids only, once the text is complete)."""
        if self._m.is_error():
            raise RuntimeError(f"the grammar matcher failed: {self._m.get_error()}")
        return self._m.compute_bitmask()

    def advance(self, token_id: int) -> None:
        """Consume a generated id."""
        self._m.consume_token(token_id)


class LLGuidanceGrammars:
    """GrammarPort over llguidance, for one tokenizer and the model's vocabulary size."""

    def __init__(self, tok: HFTokenizer, vocab_size: int):
        self._tok = tok
        self._vocab = vocab_size
        self._ll: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def _tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._ll is None:
                self._ll = llguidance.LLTokenizer(self._tok.backend_json(), n_vocab=self._vocab,
                                                  eos_token=sorted(self._tok.eos_token_ids))
            return self._ll

    def compile(self, grammar: Grammar) -> str:
        """Return llguidance's grammar text; raise InvalidRequest saying what is wrong with it."""
        if grammar.kind == "json_schema":
            try:
                text = llguidance.LLMatcher.grammar_from_json_schema(grammar.source, defaults=_JSON_OPTIONS)
            except ValueError as exc:
                raise InvalidRequest(f"the JSON schema is not valid: {exc}", param=grammar.param) from None
        elif grammar.kind == "lark":
            text = llguidance.LLMatcher.grammar_from_lark(grammar.source)
        else:
            raise InvalidRequest(f"unknown grammar kind {grammar.kind!r}", param=grammar.param)
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(text, self._tokenizer())
        if failed or (grammar.strict and messages):
            what = "; ".join(messages)
            raise InvalidRequest(f"the schema can't be enforced: {what}" + (" (strict: keywords this server "
                                 "can't enforce are errors)" if not failed else ""), param=grammar.param)
        return text

    def matcher(self, grammar: Grammar) -> LLGuidanceMatcher:
        """A fresh matcher for `grammar`."""
        return LLGuidanceMatcher(llguidance.LLMatcher(self._tokenizer(), self.compile(grammar)))
