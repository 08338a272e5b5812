"""The built-in BM25 retriever: scoring by the `bm25s` library, with a tokenizer for any script.

Tokens are Unicode words (`\\w+`), NFKD-normalized with combining marks dropped and casefolded, so
"Café", "CAFE" and "café" match and "Straße" matches "strasse". English stop words are dropped and English
words are stemmed by the Snowball stemmer (PyStemmer), so "ferries", "ferry" and "running", "runs" match. Runs of Han, kana or Hangul characters, written without spaces, become overlapping
character bigrams.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from superlinear.core.ports import Passage

from ..hookspecs import hookimpl

__all__ = ["Bm25Retriever", "tokenize", "superlinear_retrievers"]

_WORD = re.compile(r"\w+")
# Han, Hiragana, Katakana, Hangul syllables: scripts usually written without spaces between words.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _stem(word: str) -> str:
    """Stem English words with Snowball (lighthouses -> lighthous, ferries -> ferri); leave other words alone."""
    if not word.isascii() or len(word) <= 3 or not word.isalpha():
        return word
    return _stemmer().stemWord(word)


def _cjk_grams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """Split `text` into retrieval tokens."""
    tokens: list[str] = []
    for word in _WORD.findall(_fold(text)):
        pos = 0
        for run in _CJK.finditer(word):
            tokens.extend(_plain(word[pos:run.start()], stopwords))
            tokens.extend(_cjk_grams(run.group()))
            pos = run.end()
        tokens.extend(_plain(word[pos:], stopwords))
    return tokens


def _plain(word: str, stopwords: frozenset[str]) -> list[str]:
    if not word or word in stopwords or (len(word) == 1 and not word.isdigit()):
        return []
    return [_stem(word)]


class Bm25Retriever:
    """A Retriever over passages, scored with Okapi BM25 by `bm25s`; rebuilt whenever passages are added."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self._passages: list[Passage] = []
        self._index = None
        self._stopwords: frozenset[str] = frozenset()

    def index(self, passages: Sequence[Passage]) -> None:
        """Add passages and rebuild the index (bm25s indexes are built in one go)."""
        import bm25s

        self._stopwords = self._stopwords or _stopwords()
        self._passages.extend(passages)
        if not self._passages:
            return
        self._index = bm25s.BM25(k1=self.k1, b=self.b)
        corpus = [tokenize(p.text, self._stopwords) for p in self._passages]
        self._index.index(corpus, show_progress=False)

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """Return at most `k` passages sharing a term with `query`, best first."""
        tokens = tokenize(query, self._stopwords)
        if self._index is None or not tokens or k < 1:
            return []
        ids, scores = self._index.retrieve([tokens], k=min(k, len(self._passages)), show_progress=False)
        return [
            Passage(self._passages[i].source, self._passages[i].text, float(s))
            for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if s > 0
        ]


@hookimpl
def superlinear_retrievers(register) -> None:
    """Register the BM25 retriever as "bm25"."""
    register("bm25", Bm25Retriever)
