"""The chunker: budgets, boundaries, overlap and determinism, on examples and generated text."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragplatform.backends.embedders.tokens import estimate_tokens
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.models import Chunk
from tests.support.corpus import NORDLYS_TXT


def count_words(text: str) -> int:
    return len(text.split())


def count_chars_quarter(text: str) -> int:
    """A tokenizer-like counter that is not additive over words (about 4 characters a token)."""
    return max(1, (len(text) + 3) // 4)


def words_of(chunks: list[Chunk]) -> list[list[str]]:
    return [chunk.text.split() for chunk in chunks]


def reassemble(chunks: list[Chunk]) -> list[str]:
    """The document's words rebuilt from the chunks by removing each chunk's overlap with the
    previous one (the longest suffix of the previous chunk that prefixes this one)."""
    result: list[str] = []
    previous: list[str] = []
    for current in words_of(chunks):
        overlap = 0
        for size in range(min(len(previous), len(current)), 0, -1):
            if previous[-size:] == current[:size]:
                overlap = size
                break
        result.extend(current[overlap:])
        previous = current
    return result


def test_blank_text_gives_no_chunks() -> None:
    assert chunk_text("", count_words, 10, 2) == []
    assert chunk_text(" \n\n\t ", count_words, 10, 2) == []


def test_short_text_is_one_chunk_with_its_token_count() -> None:
    chunks = chunk_text("  The Zephyr-9 pump's maximum pressure is 42 bar.\n", count_words, 50, 5)
    assert chunks == [Chunk(index=0, text="The Zephyr-9 pump's maximum pressure is 42 bar.", token_count=8, offset=2)]


def test_cuts_at_paragraph_break_rather_than_mid_paragraph() -> None:
    first = "Alpha beta gamma delta epsilon zeta eta theta."
    second = "Iota kappa lambda mu nu xi omicron pi rho sigma."
    chunks = chunk_text(f"{first}\n\n{second}", count_words, 12, 0)
    assert [c.text for c in chunks] == [first, second]


def test_prefers_sentence_end_when_no_paragraph_break_fits() -> None:
    text = "One two three four five six. Seven eight nine ten eleven twelve thirteen fourteen."
    chunks = chunk_text(text, count_words, 10, 0)
    assert chunks[0].text == "One two three four five six."
    assert chunks[1].text == "Seven eight nine ten eleven twelve thirteen fourteen."


def test_keeps_line_and_paragraph_breaks_inside_a_chunk() -> None:
    text = "Heading\n\nFirst line\nsecond line."
    assert chunk_text(text, count_words, 100, 0)[0].text == text


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_text(text, count_words, 20, 5)
    for previous, current in zip(words_of(chunks), words_of(chunks)[1:], strict=False):
        assert previous[-5:] == current[:5]
    assert reassemble(chunks) == text.split()


def test_overlap_snaps_to_a_sentence_start_when_that_keeps_most_of_it() -> None:
    # The sentence end "c." is too early to cut at (under half the budget), so the first chunk
    # is cut after 14 words; the 12-word overlap would start at "c.", the next sentence one later.
    text = "a b c. D e f g h i j k l m n o p q r s t u v w x y z."
    chunks = chunk_text(text, count_words, 14, 12)
    assert chunks[0].text == "a b c. D e f g h i j k l m n"
    assert chunks[1].text.startswith("D e f")


def test_a_word_longer_than_the_budget_is_a_chunk_of_its_own() -> None:
    long_word = "x" * 400
    chunks = chunk_text(f"short words here {long_word} and after", count_chars_quarter, 20, 4)
    assert long_word in [c.text for c in chunks]
    for chunk in chunks:
        assert chunk.token_count <= 20 or chunk.text == long_word
    assert reassemble(chunks) == f"short words here {long_word} and after".split()


def test_non_additive_counter_is_respected_by_recounting() -> None:
    # Each word counts 1 alone, but the joined text counts 3 per word: per-word sums underestimate.
    def joined_is_dearer(text: str) -> int:
        return 1 if " " not in text else 3 * len(text.split())

    chunks = chunk_text(" ".join(["word"] * 50), joined_is_dearer, 30, 3)
    assert all(c.token_count <= 30 for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) >= 50


def test_real_document_chunks_fit_and_keep_the_fact_whole() -> None:
    text = NORDLYS_TXT.read_text()
    chunks = chunk_text(text, count_words, 80, 16)
    assert len(chunks) > 3
    assert all(0 < c.token_count <= 80 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert any("tank holds 900 litres" in c.text for c in chunks)
    assert reassemble(chunks) == text.split()


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, -1), (10, 10), (10, 50)])
def test_rejects_impossible_settings(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_text("some text", count_words, size, overlap)


# --- properties over generated text -------------------------------------------------------------

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-'", min_size=1, max_size=12)
_punct = st.sampled_from(["", "", "", ".", ",", "!", "?"])
_sep = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\t", " \n \n "])
# Each word gets its position appended, so that words are unique and the overlap between two
# chunks can be read off without ambiguity.
_texts = st.lists(st.tuples(_word, _punct, _sep), max_size=300).map(
    lambda parts: "".join(f"{w}{i}{p}{s}" for i, (w, p, s) in enumerate(parts))
)
_sizes = st.integers(min_value=2, max_value=60).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(min_value=0, max_value=size - 1))
)


@settings(max_examples=300, deadline=None)
@given(text=_texts, sizes=_sizes, counter=st.sampled_from([count_words, count_chars_quarter]))
def test_properties_hold_for_any_text(text: str, sizes: tuple[int, int], counter: Callable[[str], int]) -> None:
    size, overlap = sizes
    chunks = chunk_text(text, counter, size, overlap)

    # Deterministic.
    assert chunk_text(text, counter, size, overlap) == chunks
    # No empty chunks, numbered in order, counts honest.
    assert all(c.text.strip() and c.text == c.text.strip() for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count == counter(c.text) for c in chunks)
    # Within budget unless the chunk is a single over-long word.
    assert all(c.token_count <= size or len(c.text.split()) == 1 for c in chunks)
    # Every chunk is a verbatim slice of the text that begins and ends on word boundaries.
    # (Searched as a whole-word slice: a plain find() can land inside a longer word that starts
    # with the same characters, e.g. "05" inside "05002".)
    for chunk in chunks:
        assert re.search(rf"(?:^|(?<=\s)){re.escape(chunk.text)}(?=\s|$)", text), chunk.text
        assert text[chunk.offset : chunk.offset + len(chunk.text)] == chunk.text  # where it was cut
    assert [c.offset for c in chunks] == sorted({c.offset for c in chunks})
    # Nothing lost, nothing reordered; chunks are consecutive, overlapping by whole words.
    assert reassemble(chunks) == text.split()
    # The overlap between neighbours stays within the budget (words counted one by one).
    for previous, current in zip(words_of(chunks), words_of(chunks)[1:], strict=False):
        shared = next(
            (n for n in range(min(len(previous), len(current)) - 1, 0, -1) if previous[-n:] == current[:n]),
            0,
        )
        assert sum(counter(w) for w in current[:shared]) <= max(overlap, 0) or shared == 0


def test_no_chunk_begins_or_ends_inside_a_word() -> None:
    text = "supercalifragilistic " * 30
    for chunk in chunk_text(text, count_chars_quarter, 12, 3):
        assert re.fullmatch(r"(supercalifragilistic\s*)+", chunk.text + " ")


def test_word_counts_are_reused_across_documents_without_changing_the_chunks() -> None:
    counted: list[str] = []

    def counter(text: str) -> int:
        counted.append(text)
        return len(text.split())

    text = NORDLYS_TXT.read_text()
    first = chunk_text(text, counter, 40, 8)
    words_counted_first = sum(1 for t in counted if len(t.split()) == 1)
    counted.clear()
    again = chunk_text(text, counter, 40, 8)
    assert again == first
    assert words_counted_first > 0
    assert not any(len(t.split()) == 1 for t in counted)  # every word's count came from the cache


# --- counters that add up over words -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=_texts, sizes=_sizes)
def test_an_additive_counter_gives_the_same_chunks_without_recounting_them(text: str, sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    counted: list[str] = []

    def counter(piece: str) -> int:  # estimate_tokens: the counter the hashing and OpenAI embedders use
        counted.append(piece)
        return estimate_tokens(piece)

    recounted = chunk_text(text, estimate_tokens, size, overlap)
    assert chunk_text(text, counter, size, overlap, additive=True) == recounted
    assert all(len(piece.split()) <= 1 for piece in counted)  # words only: no chunk counted whole
