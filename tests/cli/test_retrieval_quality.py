"""The built-in BM25 retriever finds the paragraph that answers a question, on the test corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from superlinear.frontends.cli.docs.passages import split_passages
from superlinear.plugins import build_plugin_manager, collect

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"

# (question, a phrase found only in the paragraph that answers it)
QUESTIONS = [
    ("How many glass prisms make up the lens of the Valdoran lighthouse?", "four thousand two hundred"),
    ("Who was the architect that designed the Valdoran lighthouse?", "Elsbeth Marrow"),
    ("Which keeper looked after forty cats?", "Mira Ostrova"),
    ("How many brass gears are in the Thessaly orrery engine?", "two thousand three hundred"),
    ("What drives the orrery engine and how heavy are the weights?", "two falling weights"),
    ("Who led the reconstruction of Wren's engine at the Kellmouth museum?", "Dagny Ruud"),
    ("What breed of pony runs wild on the moor of Korrin?", "twelve hands"),
    ("When do the islanders of Korrin hold the Festival of Lanterns?", "last Saturday of October"),
    ("What is a silver mark worth?", "three mainland crowns"),
    ("How long did the Glasswing take to cross the Atlantic?", "sixty-one hours"),
    ("Who was the captain of the Glasswing airship?", "Adaeze Okonkwo"),
    ("Why did the Glasswing use helium instead of hydrogen?", "Casimir Plaat"),
    ("How many locks are on the Frostvik canal?", "nineteen locks"),
    ("Who was the chief engineer who surveyed the snowmelt canal on skis?", "Ingrid Halvorsen"),
    ("How do the ice-breaking barges break the ice?", "dancing the ice"),
    ("What happens at the Käsefest cheese fair?", "Goldene Laib"),
    ("What are the duties of the Bruckenwachter in Muhlenberg?", "bridge warden"),
    ("Which town is Muehlenberg twinned with?", "twinned since 1978"),
    ("風見町の人口は何人ですか", "四千二百人"),
    ("STRASSE DER ZAHNRÄDER cogwheel teeth", "twelve teeth for a wheelwright"),
]


def flat(text: str) -> str:
    """The text with every run of whitespace as one space, so phrases may cross line breaks."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def retriever():
    factory = collect(build_plugin_manager(load_entrypoints=False), "superlinear_retrievers")["bm25"]
    r = factory()
    passages = []
    for path in sorted(CORPUS.glob("*.md")):
        if path.name != "README.md":
            passages.extend(split_passages(path.name, path.read_text(encoding="utf-8")))
    r.index(passages)
    return r


def test_the_corpus_is_several_thousand_words_of_several_documents():
    docs = [p for p in CORPUS.glob("*.md") if p.name != "README.md"]
    assert len(docs) >= 5
    assert sum(len(p.read_text(encoding="utf-8").split()) for p in docs) >= 3000


def test_every_answer_phrase_is_in_exactly_one_passage():
    passages = [p for path in sorted(CORPUS.glob("*.md")) if path.name != "README.md"
                for p in split_passages(path.name, path.read_text(encoding="utf-8"))]
    for _, phrase in QUESTIONS:
        holders = [p.source for p in passages if phrase in flat(p.text)]
        assert len(holders) == 1, (phrase, holders)


@pytest.mark.parametrize(("question", "phrase"), QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_the_answering_paragraph_is_in_the_top_three(retriever, question, phrase):
    top = retriever.retrieve(question, 3)
    assert any(phrase in flat(p.text) for p in top), [p.source for p in top]
