"""The built-in BM25 retriever plugin: its tokenizer and its edge cases."""

from __future__ import annotations

from superlinear.core.ports import Passage, Retriever
from superlinear.plugins import build_plugin_manager, collect
from superlinear.plugins.builtin.bm25 import Bm25Retriever, tokenize


def test_bm25_is_registered_through_the_retriever_hook():
    factories = collect(build_plugin_manager(load_entrypoints=False), "superlinear_retrievers")
    assert factories["bm25"] is Bm25Retriever
    assert isinstance(factories["bm25"](), Retriever)


def test_tokens_fold_case_accents_and_sharp_s():
    assert tokenize("Brückenwächter") == tokenize("BRUCKENWACHTER") == tokenize("bruckenwachter")
    assert len(tokenize("Brückenwächter")) == 1
    assert tokenize("Straße") == tokenize("STRASSE")
    assert tokenize("Naïve Zoë café") == tokenize("naive ZOE cafe")


def test_english_words_are_stemmed_so_forms_of_a_word_match():
    for forms in (["lighthouses", "lighthouse"], ["ferries", "ferry"], ["boxes", "box"], ["running", "runs", "run"],
                  ["keepers", "keeper"]):
        assert len({tuple(tokenize(w)) for w in forms}) == 1, forms
    assert tokenize("glass boxes") == ["glass", "box"]
    assert tokenize("Ångströms") == ["angstrom"]
    assert tokenize("мостами") == ["мостами"] and tokenize("x2rays") == ["x2rays"]  # not English words: left alone


def test_scripts_without_spaces_become_character_bigrams():
    assert tokenize("風見町") == ["風見", "見町"]
    assert tokenize("mühle風") == [*tokenize("muhle"), "風"]


def test_stop_words_are_dropped_when_given():
    assert tokenize("the cat and the hat", frozenset({"the", "and"})) == ["cat", "hat"]


def test_an_empty_index_and_an_empty_query_retrieve_nothing():
    r = Bm25Retriever()
    assert r.retrieve("anything", 3) == []
    r.index([Passage("a", "alpha beta")])
    assert r.retrieve("", 3) == []
    assert r.retrieve("the of and", 3) == []


def test_k_beyond_the_corpus_and_unmatched_passages_are_handled():
    r = Bm25Retriever()
    r.index([Passage("a", "red lighthouse"), Passage("b", "blue ferry")])
    found = r.retrieve("lighthouse", 10)
    assert [p.source for p in found] == ["a"]
    assert found[0].score > 0


def test_indexing_again_adds_to_the_passages():
    r = Bm25Retriever()
    r.index([Passage("a", "red lighthouse")])
    r.index([Passage("b", "blue ferry")])
    assert [p.source for p in r.retrieve("ferry", 2)] == ["b"]
