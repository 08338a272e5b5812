"""Constrained turns against the fakes: the matcher masks the answer, never the thinking."""

import pytest

from superlinear.core import ChatRequest, InvalidRequest, Message, SamplingParams
from superlinear.core.values import Grammar

DIGITS = [ord(c) + 5 for c in "0123456789"]  # the fake tokenizer's ids


class ThreeDigits:
    """A toy matcher: three digits, then only end of turn (id 1)."""

    def __init__(self):
        self.seen: list[int] = []

    def allowed(self) -> bytes:
        ids = DIGITS if len(self.seen) < 3 else [1]
        mask = bytearray(2048)
        for i in ids:
            mask[i // 8] |= 1 << (i % 8)
        return bytes(mask)

    def advance(self, token_id: int) -> None:
        assert token_id in (DIGITS if len(self.seen) < 3 else [1])
        self.seen.append(token_id)


class Grammars:
    def __init__(self):
        self.made: list[ThreeDigits] = []

    def matcher(self, grammar):
        if grammar.source == "bad":
            raise InvalidRequest("bad grammar", param=grammar.param)
        self.made.append(ThreeDigits())
        return self.made[-1]


@pytest.fixture
def grammars(service):
    service.runner.grammars = Grammars()
    return service.runner.grammars


def turn(service, thinking: bool, source: str = "digits", n_tokens: int = 40, temperature: float = 1.0):
    sampling = SamplingParams(max_tokens=n_tokens, temperature=temperature, seed=3,
                              grammar=Grammar("lark", source))
    req = ChatRequest(messages=(Message("user", "hi"),), sampling=sampling,
                      template_kwargs={"enable_thinking": thinking})
    events = list(service.chat(req).events(timeout=10))
    return events, "".join(e.text for e in events if e.kind == "content")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_answer_follows_the_matcher_and_ends_when_it_is_complete(service, grammars, temperature):
    events, content = turn(service, False, temperature=temperature)
    assert len(content) == 3 and content.isdigit()
    assert events[-1].finish_reason == "stop" and events[-1].usage.completion_tokens == 4


def test_thinking_is_free_and_the_answer_after_it_is_constrained(service, grammars, model):
    model.script = ["free thoughts</think>"]
    events, content = turn(service, True)
    assert "".join(e.text for e in events if e.kind == "reasoning") == "free thoughts"
    assert content.isdigit() and len(content) == 3


def test_a_grammar_the_port_refuses_is_an_error_before_any_event(service, grammars):
    with pytest.raises(InvalidRequest, match="bad grammar"):
        turn(service, False, source="bad")


def test_without_a_grammar_port_a_grammar_is_refused(service):
    with pytest.raises(InvalidRequest, match="not available"):
        turn(service, False)
