"""The varied retrieval forms (training/retrieval.py): true answers, every depth, every form."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import retrieval  # noqa: E402
import synthetic  # noqa: E402

FACT = re.compile(
    r"The (?:secret code for the|access number of the|special magic number for|code word for the|"
    r"secret password of) [\w ]+? is \w+\."
)


def _draw(seed: int, count: int, tokens=(300, 6000)):
    rng = random.Random(seed)
    return [retrieval.retrieval_conversation(rng, rng.randint(*tokens)) for _ in range(count)]


def _replies(conv):
    """(the user turns' text before it, its answer) for each trained reply that is not an OK."""
    out, users = [], ""
    for seg in conv:
        if seg.train and seg.text != "OK<|im_end|>":
            out.append((users, seg.text.removesuffix("<|im_end|>").split("</think>")[-1]))
        if seg.text.startswith("<|im_start|>user"):
            users += seg.text
    return out


def test_every_answer_states_facts_hidden_once_in_the_documents_before_it():
    seed = random.SystemRandom().randrange(2**31)
    answered = 0
    for conv in _draw(seed, 150):
        for users, answer in _replies(conv):
            facts = FACT.findall(answer)
            assert facts and " ".join(facts) == answer, (seed, answer)
            for fact in facts:
                assert users.count(fact) == 1, (seed, fact)
            answered += 1
    assert answered >= 150


def test_the_question_asks_for_the_answers_keys_and_no_value_leaks_into_it():
    seed = random.SystemRandom().randrange(2**31)
    for conv in _draw(seed, 100):
        turns = [s.text for s in conv]
        for i, seg in enumerate(conv):
            if not seg.train or seg.text == "OK<|im_end|>":
                continue
            question = next(t for t in reversed(turns[:i]) if t.startswith("<|im_start|>user"))
            asked = question.rsplit("\n\n", 1)[-1]
            for fact in FACT.findall(seg.text):
                key, value = re.match(r"The .*? (?:for|of) (?:the )?([\w ]+?) is (\w+)\.", fact).groups()
                own = [q for q in re.split(r"(?<=[?.]) ", asked) if key in q]
                assert own and all(value not in q.lower() for q in own), (seed, asked, fact)


def test_needles_sit_at_every_depth_and_every_form_occurs():
    seed = random.SystemRandom().randrange(2**31)
    depths, questions, kinds = [], set(), set()
    forms = {
        "pasted with the question": 0,
        "pasted then asked": 0,
        "spl docs": 0,
        "two at once": 0,
        "distractor": 0,
        "several needles": 0,
    }
    for conv in _draw(seed, 300):
        text = synthetic.all_text(conv)
        documents = (
            text.split("<|im_start|>assistant")[0]
            if "<<<DOC" not in text
            else text[: text.rfind("Reply only")]
        )
        hidden = FACT.findall(documents)
        answers = " ".join(a for _, a in _replies(conv))
        for fact in hidden:
            depths.append(documents.index(fact) / len(documents))
            kinds.add("number" if re.search(r"is \d+\.", fact) else "word")
        forms["several needles"] += len(hidden) > 1
        forms["distractor"] += any(f not in answers for f in hidden)
        forms["spl docs"] += "<<<DOC" in text
        first_user = conv[0].text
        pasted = "<<<DOC" not in text
        forms["pasted with the question"] += pasted and first_user.rstrip().endswith("?<|im_end|>")
        forms["pasted then asked"] += pasted and not first_user.rstrip().endswith("?<|im_end|>")
        forms["two at once"] += any(len(FACT.findall(a)) == 2 for _, a in _replies(conv))
        for seg in conv:
            if seg.text.startswith("<|im_start|>user") and "?" in seg.text:
                questions.add(
                    re.sub(r"(?:for|of) (?:the )?[\w ]+?(?=[?.])", "KEY", seg.text.rsplit("\n", 2)[-2])
                )
    assert min(depths) < 0.05 and max(depths) > 0.95, (seed, min(depths), max(depths))
    assert sum(d < 0.5 for d in depths) > 0.3 * len(depths) < sum(d >= 0.5 for d in depths), seed
    assert kinds == {"number", "word"}
    assert all(count >= 10 for count in forms.values()), (seed, forms)
    assert len(questions) >= 15, (seed, len(questions))


def test_only_replies_are_trained_and_the_default_mix_draws_no_new_form():
    seed = random.SystemRandom().randrange(2**31)
    for conv in _draw(seed, 50):
        for seg in conv:
            if seg.train:
                assert seg.text.endswith("<|im_end|>") and "<|im_start|>" not in seg.text
    # retrieval_share=0 (the default) keeps the original generator's draws: the same rng state after.
    a, b = random.Random(seed), random.Random(seed)
    for _ in range(30):
        first = synthetic.conversation(a, 3000)
        assert first == synthetic.conversation(b, 3000, retrieval_share=0.0)
    mixed = random.Random(seed)
    texts = [synthetic.all_text(synthetic.conversation(mixed, 3000, retrieval_share=1.0)) for _ in range(60)]
    assert any("Which" in t or "Tell me" in t or "I need" in t for t in texts)
