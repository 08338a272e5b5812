"""More retrieval forms for the training data: varied facts and questions, pasted documents, several needles.

``synthetic.docs_conversation`` teaches one form: documents handed over as `spl docs` does, a magic number
or a password, one question wording. Here the same skill in the forms users bring:

- facts of several kinds and wordings, numbers and made-up words ("The secret code for the archive is
  4821.", "The code word for the north gate is bakimo."), asked in many phrasings ("Which code opens the
  archive?", "I need the code for the archive. What is it?");
- the documents pasted into ONE user message (headed "Document 1:", "--- notes/a.txt ---", a title, or
  nothing), the question in the same message or in the next one, as well as the `spl docs` framing;
- one to four needles at independent depths (anywhere from the first sentence to the last), questions
  about one or two of them at a time, and distractors of the same kind that are never asked about.

``retrieval_conversation`` draws one such conversation; ``synthetic.conversation`` mixes them in with
``retrieval_share`` (0 by default, which leaves its draws, and so the tokenizer's corpus, unchanged).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import synthetic
from synthetic import Conversation, assistant_turn, doc_turns, made_up_word, nonce, source_name, user_turn

THINGS = (
    "archive", "vault", "north gate", "server room", "blue locker", "old mill", "library annex", "boathouse",
    "east tower", "storage shed", "workshop", "cellar", "museum wing", "garden house", "radio hut",
)  # fmt: skip
# (fact, questions) per kind; {k}: the key, {v}: the value. Each question asks for exactly that value.
NUMBER_FORMS = (
    ("The secret code for the {k} is {v}.", (
        "What is the secret code for the {k}?", "Which code opens the {k}?",
        "Tell me the secret code for the {k}.",
        "I need the code for the {k}. What is it?", "Do you know the secret code for the {k}?",
        "What did the documents say the code for the {k} was?",
    )),
    ("The access number of the {k} is {v}.", (
        "What is the access number of the {k}?", "Which access number does the {k} have?",
        "Can you find the access number of the {k}?", "What's the {k}'s access number?",
    )),
    ("The special magic number for {k} is {v}.", (
        "What is the special magic number for {k}?", "Which magic number is given for {k}?",
        "Find the special magic number for {k}.", "What number is the magic number for {k}?",
    )),
)  # fmt: skip
WORD_FORMS = (
    ("The code word for the {k} is {v}.", (
        "What is the code word for the {k}?", "Which code word belongs to the {k}?",
        "Tell me the code word for the {k}.", "What's the code word of the {k}, according to the text?",
    )),
    ("The secret password of {k} is {v}.", (
        "What is the secret password of {k}?", "What password does {k} use?",
        "Can you tell me the secret password of {k}?", "Look up the secret password of {k}.",
    )),
)  # fmt: skip
PASTE_INTROS = (
    "Here are some documents.", "Read these notes, please.", "I'm pasting a few files below.",
    "Some text for you:", "", "Below are my documents.",
)  # fmt: skip
PAIR_QUESTIONS = ("{a} Also, {b}", "Two questions. {a} And {b}", "{a} {b}")


@dataclass(frozen=True)
class Fact:
    """A needle: its sentence, the questions that ask for it, the answer sentence and the value."""

    sentence: str
    questions: tuple[str, ...]
    value: str
    key: str


def make_fact(rng: random.Random, used_keys: set[str]) -> Fact:
    """A fact of a random kind and wording (60% numbers of 3 to 7 digits, 40% made-up words)."""
    number = rng.random() < 0.6
    form, questions = rng.choice(NUMBER_FORMS if number else WORD_FORMS)
    while True:  # a thing ("the archive") or a name (a city, a made-up name), never a key used already
        if "the {k}" in form:
            key = rng.choice(THINGS)
        else:
            key = rng.choice(synthetic.CITIES) if rng.random() < 0.5 else synthetic._cap(made_up_word(rng))
        if key not in used_keys:
            break
    used_keys.add(key)
    asked = tuple(q.format(k=key) for q in questions)
    while True:  # a value that no question (or key) already spells, so no question gives the answer away
        value = (
            str(rng.randint(10 ** (d := rng.randint(3, 7)) // 10, 10**d - 1)) if number else made_up_word(rng)
        )
        if not any(value in q.lower() for q in asked):
            return Fact(form.format(k=key, v=value), asked, value, key)


def place_facts(rng: random.Random, docs: list[str], facts: list[Fact]) -> list[float]:
    """Hide each fact at an independent depth of the documents taken as one text; returns the depths."""
    depths = []
    for fact in facts:
        depth = rng.random()
        spot = depth * len(docs)
        home = min(len(docs) - 1, int(spot))
        docs[home] = synthetic.hide(rng, docs[home], fact.sentence, spot - home)
        depths.append(depth)
    return depths


def _heading(style: int, index: int, source: str) -> str:
    return ("Document {i}:\n", "--- {s} ---\n", "# {s}\n", "")[style].format(i=index + 1, s=source)


def pasted_message(rng: random.Random, docs: list[str], sources: list[str]) -> str:
    """The documents pasted into one user message, under a random kind of heading (or none)."""
    style = rng.randrange(4)
    body = "\n\n".join(_heading(style, i, s) + d for i, (d, s) in enumerate(zip(docs, sources, strict=True)))
    intro = rng.choice(PASTE_INTROS)
    return f"{intro}\n\n{body}" if intro else body


def _answer(rng: random.Random, facts: list[Fact]) -> list:
    """The assistant's reply: the thought quotes the fact(s), the answer states them."""
    quoted = " ".join(f.sentence for f in facts)
    thought = f"The text says: {quoted[:1].lower() + quoted[1:]}"
    return assistant_turn(thought if rng.random() < 0.85 else None, quoted)


def _question(rng: random.Random, asked: list[Fact]) -> str:
    first = rng.choice(asked[0].questions)
    if len(asked) == 1:
        return first
    second = rng.choice(asked[1].questions)
    return rng.choice(PAIR_QUESTIONS).format(a=first, b=second[:1].lower() + second[1:])


def retrieval_conversation(
    rng: random.Random, target_tokens: int, chars_per_token: float = 3.2, filler=synthetic.filler_document
) -> Conversation:
    """Documents of about ``target_tokens`` tokens with 1 to 4 facts, pasted into one message or handed over
    as `spl docs` does, then one to three questions about one or two facts at a time."""
    n_docs = max(1, min(30, round(target_tokens / rng.choice([300, 800, 2000]))))
    sentences = max(3, round(target_tokens * chars_per_token / 60 / n_docs))
    docs = [filler(rng, max(3, sentences + rng.randint(-2, 2))) for _ in range(n_docs)]
    sources = [source_name(rng, i) for i in range(n_docs)]
    used: set[str] = set()
    facts = [make_fact(rng, used) for _ in range(rng.randint(1, 4))]
    place_facts(rng, docs, facts)
    asked_pool = facts[: max(1, len(facts) - rng.randint(0, 1))]  # the rest are distractors only
    questions = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        asked = rng.sample(asked_pool, min(len(asked_pool), 2 if rng.random() < 0.25 else 1))
        questions.append((_question(rng, asked), asked))
    segments: Conversation = []
    if rng.random() < 0.5:
        pasted = pasted_message(rng, docs, sources)
        first_q, first_facts = questions.pop(0)
        if rng.random() < 0.7:  # the question in the same message, after the documents
            segments += [user_turn(f"{pasted}\n\n{first_q}"), *_answer(rng, first_facts)]
        else:
            segments += [
                user_turn(pasted),
                *assistant_turn(None, "OK"),
                user_turn(first_q),
                *_answer(rng, first_facts),
            ]
    else:
        tag = nonce(rng)
        for source, text in zip(sources, docs, strict=True):
            segments += doc_turns(tag, source, text)
    for question, asked in questions:
        segments += [user_turn(question), *_answer(rng, asked)]
    return segments
