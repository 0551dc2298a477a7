"""Token-aware chunking with overlap.

`chunk_text` cuts a document's text into pieces of at most `chunk_tokens` tokens, as the
embedder counts them, repeating about `overlap_tokens` tokens of each chunk at the start of the
next so that a fact cut in two still appears whole in one chunk.

How: the text is split into words (runs of non-space; a word is never cut). Each word's tokens
are counted once (cached per distinct word, across documents), and a window of words is grown
until the budget is spent (a binary search over the running token total). The cut goes at the
last paragraph break in the back half of the window, else the last sentence end, else the last
line break, else after the last word that fits. Each chunk is the original text between its
first and last word, so line and paragraph breaks survive. Because per-word counts only
approximate the count of the joined text, every chunk is counted again as a whole and trimmed
word by word until it fits - unless the caller says the counter adds up over words (`additive`),
as the estimate of the embedders without a tokenizer does. A one-character gap counts as a space
even when it is a lone line break (as the chunker always did: changing it would move every chunk
boundary of existing indexes' documents on re-ingestion).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate

from ragplatform.domain.models import Chunk

# Splits text into words (runs of non-space) and the gaps between them, gaps kept.
_SPLIT = re.compile(r"(\s+)")
# A sentence ends with . ! ? or an ellipsis, maybe followed by closing quotes or brackets.
_SENTENCE_END = re.compile("[.!?\u2026][\"'\u201d\u2019)\\]]*$")
_SENTENCE_TAIL = frozenset(".!?\u2026\"'\u201d\u2019)]")

# Break strengths, strongest first: the chunker prefers to cut where the text itself pauses.
_PARAGRAPH, _SENTENCE, _LINE, _WORD_ONLY = 3, 2, 1, 0
# A preferred break is only taken if the chunk is at least this full; otherwise a heading right
# at the start of the window would produce a tiny chunk.
_MIN_FILL = 0.5


class _Words:
    """A text's words as parallel lists (index i is the i-th word): where each starts and ends in
    the text, its token count, how strongly the text breaks after it (see the strengths above),
    and `before[i]`, the tokens of words 0..i-1 (so a span's tokens are one subtraction)."""

    __slots__ = ("before", "breaks", "ends", "starts", "tokens")

    def __init__(self, text: str, count_tokens: Callable[[str], int]) -> None:
        parts = _SPLIT.split(text)  # word, gap, word, gap, ..., word ('' at a blank end)
        offsets = list(accumulate(map(len, parts)))
        words, gaps, ends = parts[0::2], parts[1::2], offsets[0::2]
        if words and not words[-1]:  # the text ends with a gap
            del words[-1], ends[-1]
        if words and not words[0]:  # the text starts with a gap
            del words[0], ends[0], gaps[0]
        cache = _word_token_cache(count_tokens)
        known = cache.get  # counts are at least 1, so `or` falls through only for a new word
        tokens = [known(word) or _count_word(cache, count_tokens, word) for word in words]
        # A gap of one character counts as a plain space (also a lone newline: the chunker has
        # always cut so); a longer one with a line break is a line break, with two a paragraph.
        breaks = [
            _WORD_ONLY if len(gap) == 1 or "\n" not in gap else _PARAGRAPH if gap.count("\n") > 1 else _LINE
            for gap in gaps[: len(words) - 1]
        ]
        if words:
            breaks.append(_PARAGRAPH)  # the end of the text
        for i, word in enumerate(words):
            if breaks[i] < _SENTENCE and word[-1] in _SENTENCE_TAIL and _SENTENCE_END.search(word):
                breaks[i] = _SENTENCE
        self.starts = [end - len(word) for end, word in zip(ends, words, strict=True)]
        self.ends = ends
        self.tokens = tokens
        self.breaks = breaks
        self.before = [0, *accumulate(tokens)]

    def __len__(self) -> int:
        return len(self.tokens)


def chunk_text(
    text: str,
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap_tokens: int,
    *,
    additive: bool = False,
) -> list[Chunk]:
    """Split `text` into chunks; pure and deterministic.

    `additive`: the caller promises that `count_tokens` of a text is the sum of the counts of its
    whitespace-separated pieces (as `estimate_tokens` does). A chunk's count is then the sum of
    its words' counts, so it is not counted again as a whole: the same chunks, for less work (the
    recount was ~10 % of a worker's CPU per small document with the hashing embedder).

    Callers may rely on: chunks are in document order with indexes 0, 1, 2, ...; no chunk is
    empty or only whitespace; no word is split; every chunk's `token_count` (as `count_tokens`
    counts the chunk's text) is at most `chunk_tokens`, except a chunk holding one word that alone
    is longer; neighbouring chunks share at most `overlap_tokens` tokens of words (measured per
    word); every word of the text is in at least one chunk; `offset` is where the chunk's text
    starts in `text`. Empty or blank text gives `[]`.

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
    words = _Words(text, count_tokens)
    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end = _cut(words, start, chunk_tokens)
        if additive:
            token_count = words.before[end] - words.before[start]
        else:
            end, token_count = _fit(text, words, start, end, count_tokens, chunk_tokens)
        offset = words.starts[start]
        chunks.append(
            Chunk(index=len(chunks), text=text[offset : words.ends[end - 1]], token_count=token_count, offset=offset)
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


def _count_word(cache: dict[str, int], count_tokens: Callable[[str], int], word: str) -> int:
    count = cache[word] = max(1, count_tokens(word))
    return count


def _cut(words: _Words, start: int, budget: int) -> int:
    """The end (exclusive) of the chunk starting at `start`: at least one word, then the best
    break among the words that fit - the strongest, the latest of those, but only where the chunk
    is at least `_MIN_FILL` full (else the end of the words that fit)."""
    before = words.before
    # Words that fit: the longest run from `start` whose tokens stay within the budget.
    end = max(start + 1, bisect_right(before, before[start] + budget) - 1)
    if end >= len(words):
        return end
    # The first word after which the chunk is full enough to cut.
    eligible = max(start, bisect_left(before, before[start] + _MIN_FILL * budget) - 1)
    if eligible >= end:
        return end
    breaks = words.breaks[eligible:end]
    strongest = max(breaks)
    # The latest word with the strongest break (the last word itself when it ties).
    return eligible + len(breaks) - breaks[::-1].index(strongest)


def _fit(
    text: str,
    words: _Words,
    start: int,
    end: int,
    count_tokens: Callable[[str], int],
    budget: int,
) -> tuple[int, int]:
    """Shrink [start, end) until the joined text counts at most `budget` tokens (one word is
    kept even when it alone is longer). Returns the new end and the chunk's token count."""
    starts, ends, word_tokens = words.starts, words.ends, words.tokens
    while True:
        tokens = count_tokens(text[starts[start] : ends[end - 1]])
        if tokens <= budget or end - start == 1:
            return end, tokens
        # Drop about as many words as there are excess tokens, at least one.
        excess = tokens - budget
        drop = 0
        while drop < end - start - 1 and excess > 0:
            excess -= word_tokens[end - 1 - drop]
            drop += 1
        end -= max(1, drop)


def _next_start(words: _Words, start: int, end: int, budget: int, overlap: int) -> int:
    """Where the next chunk starts: back from `end` by up to `overlap` tokens of whole words,
    but never at or before `start`, and only if the next chunk can still take a new word."""
    tokens, breaks = words.tokens, words.breaks
    new_start = end
    used = 0
    while new_start - 1 > start and used + tokens[new_start - 1] <= overlap:
        used += tokens[new_start - 1]
        new_start -= 1
    if used + tokens[end] > budget:
        return end  # the next word would not fit beside the overlap: start afresh
    # Start the overlap at a sentence start when that keeps at least half of it, so the next
    # chunk does not open mid-sentence.
    kept = used
    for i in range(new_start, end):
        if breaks[i - 1] >= _SENTENCE:
            return i if kept >= overlap / 2 else new_start
        kept -= tokens[i]
    return new_start
