"""Small lexical helpers shared by citation assembly and the extractive answerer: sentences,
words, and how much two texts have in common. Pure and deterministic."""

from __future__ import annotations

import re
from typing import Final

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n\s*\n|\n(?=\s*[-*\u2022] )")
_WORD = re.compile(r"[^\W_]+(?:[-'\u2019.:][^\W_]+)*")

# Words too common to say anything about relevance.
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our out over own same she should so some such than
    that the their them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours does tell please
    much many"""
STOPWORDS: Final[frozenset[str]] = frozenset(_STOPWORD_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items and paragraphs) of `text`, stripped, none empty."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def words(text: str) -> list[str]:
    """Lower-cased words; "Zephyr-9", "1.4462", "23:40" and "don't" each count as one word, and a
    possessive counts as its noun ("pump's" -> "pump")."""
    result = []
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered.endswith(("'s", "\u2019s")) and len(lowered) > 2:
            lowered = lowered[:-2]
        result.append(lowered)
    return result


def content_words(text: str) -> set[str]:
    """The distinct words of `text` that are not stopwords, with a plain trailing "s" removed so
    that "holds" matches "hold" and "litres" matches "litre"."""
    return {_strip_plural(w) for w in words(text) if w not in STOPWORDS}


def _strip_plural(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def overlap_score(query_words: set[str], text: str) -> float:
    """How well `text` matches `query_words`: the number of query words it contains, with a small
    bonus for density so that a short sentence beats a long one containing the same words."""
    text_words = words(text)  # once: the content words and the density both come from it
    found = query_words & {_strip_plural(w) for w in text_words if w not in STOPWORDS}
    if not found:
        return 0.0
    return len(found) + len(found) / (1 + len(text_words))
