"""The shipped default model does what its README says, decoded greedily through the server's adapter.

These check the artifact, not the code: a wrong export, a tokenizer that no longer matches the weights or
a broken chat template makes them fail.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.core.values import Message

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import synthetic  # noqa: E402
from niah import answer, answer_of  # noqa: E402


@pytest.fixture(scope="module")
def model() -> TorchModel:
    return TorchModel.from_dir(default_model_dir())


@pytest.fixture(scope="module")
def tok() -> HFTokenizer:
    return HFTokenizer.from_dir(default_model_dir())


def chat(model, tok, turns: list[str]) -> list[str]:
    """Answer each user turn in order, the history re-rendered by the chat template as a client sends it."""
    messages: list[Message] = []
    replies = []
    for user in turns:
        messages.append(Message("user", user))
        reply = answer(model, tok, tok.render(messages, add_generation_prompt=True), 320)
        replies.append(reply)
        messages.append(Message("assistant", answer_of(reply)))
    return replies


def test_it_greets_back_with_a_thought_first(model, tok):
    (reply,) = chat(model, tok, ["Hello!"])
    assert "</think>" in reply
    assert answer_of(reply).startswith(("Hello", "Hi"))


def test_it_keeps_the_name_the_user_gave(model, tok):
    replies = chat(model, tok, ["My name is Alice.", "What's my name?"])
    assert "Alice" in answer_of(replies[0])
    assert answer_of(replies[1]) == "Your name is Alice."


def test_it_works_fifteen_times_seventeen_in_a_thought_and_answers_255(model, tok):
    (reply,) = chat(model, tok, ["What is 15 x 17?"])
    thought, _, _ = reply.partition("</think>")
    assert "15 x 10" in thought and "15 x 7" in thought
    assert answer_of(reply) == "15 x 17 = 255."


def test_it_finds_a_number_needle_in_a_thousand_tokens_of_documents(model, tok):
    found = 0
    for depth in (0.0, 0.5, 1.0):
        segments, needle = synthetic.niah_session(random.Random(f"skills-{depth}"), lambda t: len(tok.encode(t)),
                                                  1024, depth)
        found += needle.value in answer_of(answer(model, tok, synthetic.all_text(segments), 80))
    assert found == 3
