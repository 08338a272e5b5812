"""The default model's training data: the layout a session holds, correct arithmetic, needles placed."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from superlinear.adapters import HFTokenizer, default_model_dir
from superlinear.core.values import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import synthetic  # noqa: E402


@pytest.fixture(scope="module")
def tok() -> HFTokenizer:
    return HFTokenizer.from_dir(default_model_dir())


def test_documents_and_answers_without_thinking_read_as_the_chat_template_renders_them(tok):
    rng = random.Random(5)
    turns = synthetic.doc_turns("abcdef0123456789", "notes/a.txt", synthetic.filler_document(rng, 6))
    turns += [synthetic.user_turn("What is 2 + 3?"), *synthetic.assistant_turn(None, "2 + 3 = 5.")]
    text = synthetic.all_text(turns)
    doc = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", text, re.S).group(1)
    messages = [Message("user", doc), Message("assistant", "OK"), Message("user", "What is 2 + 3?"),
                Message("assistant", "2 + 3 = 5.")]
    assert text == tok.render(messages, add_generation_prompt=False)


def test_a_thinking_reply_follows_the_templates_generation_prompt(tok):
    prompt = synthetic.all_text([synthetic.user_turn("Hello!"), synthetic.generation_prompt(True)])
    assert prompt == tok.render([Message("user", "Hello!")], add_generation_prompt=True)
    off = synthetic.all_text([synthetic.user_turn("Hello!"), synthetic.generation_prompt(False)])
    assert off == tok.render([Message("user", "Hello!")], add_generation_prompt=True,
                             enable_thinking=False)


def test_only_assistant_replies_are_trained():
    rng = random.Random(11)
    for _ in range(30):
        for seg in synthetic.conversation(rng, 3000):
            if seg.train:
                assert seg.text.endswith("<|im_end|>") and "<|im_start|>" not in seg.text
            else:
                assert "<|im_end|>" not in seg.text or seg.text.endswith("<|im_end|>\n")


_EQUATION = re.compile(r"(\d+(?: [x+] \d+0?)+) = ((?:\d+ [x+] )*\d+)")


def _value(expr: str) -> int:
    return eval(expr.replace("x", "*"))  # noqa: S307 - digits, spaces, + and * only


@pytest.mark.parametrize("seed", range(5))
def test_every_step_of_the_arithmetic_working_is_true(seed):
    rng = random.Random(seed)
    checked = 0
    for _ in range(200):
        question, thought, answer = synthetic.arithmetic_exchange(rng)
        a = re.search(r"(\d+)\D+?(\d+)", question).group(1)
        for line in thought.replace(":", "\n").replace(",", "\n").splitlines():
            parts = [p.strip(" .") for p in line.split("=")]
            parts = [p.split(" ", 1)[1] if p.startswith(("So ", "hundreds ", "tens ", "ones ")) else p for p in parts]
            values = [_value(p) for p in parts if p and re.fullmatch(r"[\d x+]+", p)]
            assert len(set(values)) <= 1, (thought, line)
            checked += len(values) > 1
        left, right = answer.rstrip(".").split(" = ")
        assert _value(left) == int(right), answer
        assert answer.startswith(a)
    assert checked > 200


def test_fifteen_times_seventeen_works_through_tens_and_ones():
    thought, result = synthetic.arithmetic_thought(15, "x", 17)
    assert result == 255
    assert thought.splitlines()[0] == "15 x 17 = 15 x 10 + 15 x 7."
    assert thought.splitlines()[-2:] == [
        "150 + 105: hundreds 100 + 100 = 200, tens 50 + 0 = 50, ones 0 + 5 = 5.", "200 + 50 + 5 = 255."]


def test_sums_are_worked_in_pieces_sized_to_the_numbers():
    assert synthetic.sum_working(3, 4) == "3 + 4 = 7."
    assert synthetic.sum_working(45, 38) == "45 + 38 = 40 + 30 + 5 + 8 = 70 + 13 = 83."
    assert synthetic.sum_working(8910, 891).endswith("9700 + 100 + 1 = 9801.")


def test_a_niah_session_has_one_needle_near_the_asked_depth_and_about_the_asked_length(tok):
    count = lambda text: len(tok.encode(text))  # noqa: E731
    for depth in (0.0, 0.5, 1.0):
        segments, needle = synthetic.niah_session(random.Random(3), count, 4096, depth)
        text = synthetic.all_text(segments)
        assert text.count(needle.sentence) == 1
        assert 3600 <= count(text) <= 4096
        where = count(text[: text.index(needle.sentence)]) / count(text)
        assert abs(where - depth) < 0.2, (depth, where)
        assert text.endswith(f"<|im_start|>user\n{needle.question}<|im_end|>\n<|im_start|>assistant\n<think>\n")


def test_a_docs_conversation_answers_the_question_with_the_needles_value():
    rng = random.Random(8)
    answered = 0
    for _ in range(20):
        text = synthetic.all_text(synthetic.docs_conversation(rng, 800))
        documents = text[: text.rfind("Reply only with OK.")]
        facts = dict(re.findall(r"(?:number for|password of) (\S+) is (\w+)\.", documents))
        for key, value in re.findall(r"</think>The (?:special magic number for|secret password of) (\S+) is (\w+)\.",
                                     text):
            assert facts[key] == value
            answered += 1
    assert answered >= 15
