"""Token-aware chunking with overlap.

`chunk_text` cuts a document's text into pieces of at most `chunk_tokens` tokens, as the
embedder counts them, repeating about `overlap_tokens` tokens of each chunk at the start of the
next so that a fact cut in two still appears whole in one chunk.

How: the text is split into words (runs of non-space; a word is never cut). Each word's tokens
are counted once (cached per distinct word, across documents), and a window of words is grown until the budget is
spent. The cut goes at the last paragraph break in the back half of the window, else the last
sentence end, else the last line break, else after the last word that fits. Each chunk is the
original text between its first and last word, so line and paragraph breaks survive. Because
per-word counts only approximate the count of the joined text, every chunk is counted again as a
whole and trimmed word by word until it fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ragplatform.domain.models import Chunk

_WORD = re.compile(r"\S+")
# A sentence ends with . ! ? or an ellipsis, maybe followed by closing quotes or brackets.
_SENTENCE_END = re.compile("[.!?\u2026][\"'\u201d\u2019)\\]]*$")
_PARAGRAPH_GAP = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_TAIL = frozenset(".!?\u2026\"'\u201d\u2019)]")

# Break strengths, strongest first: the chunker prefers to cut where the text itself pauses.
_PARAGRAPH, _SENTENCE, _LINE, _WORD_ONLY = 3, 2, 1, 0
# A preferred break is only taken if the chunk is at least this full; otherwise a heading right
# at the start of the window would produce a tiny chunk.
_MIN_FILL = 0.5


@dataclass(slots=True)
class _Word:
    start: int
    end: int
    tokens: int
    # How strongly the text breaks after this word (see the strengths above).
    break_after: int


def chunk_text(
    text: str,
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    """Split `text` into chunks; pure and deterministic.

    Callers may rely on: chunks are in document order with indexes 0, 1, 2, ...; no chunk is
    empty or only whitespace; no word is split; every chunk's `token_count` (as `count_tokens`
    counts the chunk's text) is at most `chunk_tokens`, except a chunk holding one word that alone
    is longer; neighbouring chunks share at most `overlap_tokens` tokens of words (measured per
    word); every word of the text is in at least one chunk. Empty or blank text gives `[]`.

    Raises `ValueError` when `chunk_tokens < 1`, `overlap_tokens < 0` or
    `overlap_tokens >= chunk_tokens` (a configuration error: no chunk could make progress).
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(
            f"overlap_tokens must be between 0 and chunk_tokens - 1 ({chunk_tokens - 1}), "
            f"got {overlap_tokens}; lower RAG_CHUNK_OVERLAP_TOKENS or raise RAG_CHUNK_TOKENS"
        )
    words = _words(text, count_tokens)
    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end = _cut(words, start, chunk_tokens)
        end, token_count = _fit(text, words, start, end, count_tokens, chunk_tokens)
        chunks.append(
            Chunk(index=len(chunks), text=text[words[start].start : words[end - 1].end], token_count=token_count)
        )
        if end >= len(words):
            break
        start = _next_start(words, start, end, chunk_tokens, overlap_tokens)
    return chunks


# Token counts of words, kept across calls per counting function: a corpus repeats its
# vocabulary, so most words of a new document were counted before. Bounded: a full cache starts
# over. Only a cache - the chunks are the same with or without it.
_WORD_TOKENS: dict[Callable[[str], int], dict[str, int]] = {}
_WORD_TOKENS_MAX = 100_000


def _word_token_cache(count_tokens: Callable[[str], int]) -> dict[str, int]:
    cache = _WORD_TOKENS.get(count_tokens)
    if cache is None or len(cache) > _WORD_TOKENS_MAX:
        if len(_WORD_TOKENS) >= 8:  # counting functions come and go only in tests
            _WORD_TOKENS.clear()
        cache = _WORD_TOKENS[count_tokens] = {}
    return cache


def _words(text: str, count_tokens: Callable[[str], int]) -> list[_Word]:
    matches = list(_WORD.finditer(text))
    cache = _word_token_cache(count_tokens)
    words: list[_Word] = []
    for i, match in enumerate(matches):
        word = match.group()
        tokens = cache.get(word)
        if tokens is None:
            tokens = cache[word] = max(1, count_tokens(word))
        end = match.end()
        next_start = matches[i + 1].start() if i + 1 < len(matches) else -1
        # Cheap tests first: most gaps are one space and most words end in a letter.
        if next_start == -1:
            strength = _PARAGRAPH
        elif next_start - end > 1 and "\n" in text[end:next_start]:
            strength = _PARAGRAPH if _PARAGRAPH_GAP.search(text, end, next_start) else _LINE
        else:
            strength = _WORD_ONLY
        if strength < _SENTENCE and word[-1] in _SENTENCE_TAIL and _SENTENCE_END.search(word):
            strength = _SENTENCE
        words.append(_Word(match.start(), end, tokens, strength))
    return words


def _cut(words: list[_Word], start: int, budget: int) -> int:
    """The end (exclusive) of the chunk starting at `start`: at least one word, then the best
    break among the words that fit."""
    used = words[start].tokens
    end = start + 1
    while end < len(words) and used + words[end].tokens <= budget:
        used += words[end].tokens
        end += 1
    if end >= len(words):
        return end
    best_end, best_strength = end, words[end - 1].break_after
    filled = 0
    for i in range(start, end):
        filled += words[i].tokens
        if filled >= _MIN_FILL * budget and words[i].break_after > best_strength:
            best_end, best_strength = i + 1, words[i].break_after
        elif filled >= _MIN_FILL * budget and words[i].break_after == best_strength and best_strength > 0:
            best_end = i + 1  # the latest break of the strongest kind
    return best_end


def _fit(
    text: str,
    words: list[_Word],
    start: int,
    end: int,
    count_tokens: Callable[[str], int],
    budget: int,
) -> tuple[int, int]:
    """Shrink [start, end) until the joined text counts at most `budget` tokens (one word is
    kept even when it alone is longer). Returns the new end and the chunk's token count."""
    while True:
        tokens = count_tokens(text[words[start].start : words[end - 1].end])
        if tokens <= budget or end - start == 1:
            return end, tokens
        # Drop about as many words as there are excess tokens, at least one.
        excess = tokens - budget
        drop = 0
        while drop < end - start - 1 and excess > 0:
            excess -= words[end - 1 - drop].tokens
            drop += 1
        end -= max(1, drop)


def _next_start(words: list[_Word], start: int, end: int, budget: int, overlap: int) -> int:
    """Where the next chunk starts: back from `end` by up to `overlap` tokens of whole words,
    but never at or before `start`, and only if the next chunk can still take a new word."""
    new_start = end
    used = 0
    while new_start - 1 > start and used + words[new_start - 1].tokens <= overlap:
        used += words[new_start - 1].tokens
        new_start -= 1
    if used + words[end].tokens > budget:
        return end  # the next word would not fit beside the overlap: start afresh
    # Start the overlap at a sentence start when that keeps at least half of it, so the next
    # chunk does not open mid-sentence.
    kept = used
    for i in range(new_start, end):
        if words[i - 1].break_after >= _SENTENCE:
            return i if kept >= overlap / 2 else new_start
        kept -= words[i].tokens
    return new_start
