"""Documents are cut into paragraph passages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from superlinear.frontends.cli.docs.passages import split_passages


def test_paragraphs_become_passages_and_headings_join_the_next_one():
    text = "# Title\n\n" + "First paragraph " * 10 + "\n\n" + "Second paragraph " * 10
    passages = split_passages("doc.md", text)
    assert [p.source for p in passages] == ["doc.md#p1", "doc.md#p2"]
    assert passages[0].text.startswith("# Title\nFirst paragraph")
    assert passages[1].text.startswith("Second paragraph")


def test_a_long_paragraph_is_split_at_sentence_ends():
    text = " ".join(f"Sentence number {i} ends here." for i in range(200))
    passages = split_passages("long.txt", text, max_chars=300)
    assert len(passages) > 5
    assert all(len(p.text) <= 300 for p in passages)
    assert all(p.text.endswith("here.") for p in passages)


@given(st.text(), st.integers(min_value=20, max_value=400))
def test_no_words_are_lost_or_reordered(text, max_chars):
    passages = split_passages("x", text, max_chars=max_chars)
    assert all(0 < len(p.text) <= max_chars for p in passages)
    joined = "".join("".join(p.text.split()) for p in passages)
    assert joined == "".join(text.split())
