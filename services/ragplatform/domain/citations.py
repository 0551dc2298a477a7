"""Citations: numbering passages for a prompt, and turning an answer back into the passages it
came from — by its [n] markers, or, when a model writes none (small models rarely do) or only
invalid ones, by matching the answer's sentences to the passages' words. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragplatform.domain.models import Citation, ScoredPassage
from ragplatform.domain.text_matching import content_words, overlap_score, split_sentences, words

#: Longest quote attached to a citation.
QUOTE_CHARS = 200

#: What a model answers when the passages do not hold the answer (the prompt asks for exactly
#: this; tests and clients look for it). Such an answer is not built from passages: no citations.
NO_ANSWER = "The documents provided do not contain the answer to this question."

#: An answer sentence is attributed to a passage when they share at least this many content
#: words, or at least half of the sentence's content words (short sentences: "It is 42 bar.").
MIN_SHARED_WORDS = 2

# "[2]", "[1, 3]" and "[1][2]" all cite; "[12a]" or "[x]" do not.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def build_context(passages: Sequence[ScoredPassage]) -> str:
    """The passages as the model sees them: `[1] filename: text`, one per paragraph, numbered
    from 1 in the order given (the numbers the answer cites)."""
    return "\n\n".join(
        f"[{number}] {passage.filename}: {' '.join(passage.text.split())}"
        for number, passage in enumerate(passages, start=1)
    )


def cited_numbers(answer: str, passage_count: int) -> list[int]:
    """The passage numbers `answer` cites, in order of first citation, each once; numbers outside
    1..passage_count (a model inventing sources) are ignored."""
    seen: list[int] = []
    for match in _MARKER.finditer(answer):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= passage_count and number not in seen:
                seen.append(number)
    return seen


def assemble_citations(
    answer: str, passages: Sequence[ScoredPassage], quote_chars: int = QUOTE_CHARS
) -> list[Citation]:
    """The passages `answer` was built from, as citations.

    When the answer carries valid [n] markers: one `Citation` per passage it cites, in order of
    first citation; `index` is the number used in the answer; `quote` is the passage's sentence
    that best matches what the answer says next to the marker, at most `quote_chars` characters.

    Otherwise (no markers, or only numbers outside 1..len(passages)) the citations are inferred
    (`inferred=True`, see `infer_citations`): an answer written from passages never comes back
    without sources. Only an answer that says the passages hold no answer (`NO_ANSWER`), an
    empty answer, or no passages give no citations."""
    numbers = cited_numbers(answer, len(passages))
    if not numbers:
        return infer_citations(answer, passages, quote_chars)
    citations = []
    for number in numbers:
        passage = passages[number - 1]
        focus = _text_around_marker(answer, number)
        citations.append(
            Citation(
                index=number,
                document_id=passage.document_id,
                filename=passage.filename,
                chunk_id=passage.chunk_id,
                quote=short_quote(passage.text, focus, quote_chars),
                score=passage.score,
            )
        )
    return citations


def infer_citations(answer: str, passages: Sequence[ScoredPassage], quote_chars: int = QUOTE_CHARS) -> list[Citation]:
    """Citations for an answer without valid markers, every one `inferred=True`.

    Each answer sentence is attributed to the passage sharing most content words with it, when
    they share at least `MIN_SHARED_WORDS` (or half the sentence's words); passages come in order
    of first attribution, `index` is the passage's 1-based position in `passages`, and `quote` is
    the passage's sentence closest to the answer sentences attributed to it. When no sentence
    matches any passage, the passage sharing most words with the whole answer is cited (ties and
    no overlap at all: the best-ranked one, which the answer was written from). No citations for
    an empty answer, no passages, or an answer that says the passages do not contain the answer."""
    if not passages or not answer.strip() or is_no_answer(answer):
        return []
    passage_words = [_matching_words(p.text) for p in passages]
    attributed: dict[int, list[str]] = {}
    for sentence in _answer_sentences(answer):
        number = _best_passage(sentence, passage_words, require_match=True)
        if number:
            attributed.setdefault(number, []).append(sentence)
    if not attributed:
        attributed[_best_passage(answer, passage_words, require_match=False)] = [answer]
    return [
        Citation(
            index=number,
            document_id=passages[number - 1].document_id,
            filename=passages[number - 1].filename,
            chunk_id=passages[number - 1].chunk_id,
            quote=short_quote(passages[number - 1].text, " ".join(sentences), quote_chars),
            score=passages[number - 1].score,
            inferred=True,
        )
        for number, sentences in attributed.items()
    ]


def is_no_answer(answer: str) -> bool:
    """True when `answer` says the passages do not contain the answer (`NO_ANSWER`, whatever
    its case, punctuation or surrounding words)."""
    return " ".join(words(NO_ANSWER)) in " ".join(words(answer))


def _best_passage(text: str, passage_words: Sequence[set[str]], *, require_match: bool) -> int:
    """The 1-based number of the passage sharing most words with `text` (the first on ties).
    With `require_match`, 0 unless they share enough words to count as a source."""
    text_words = _matching_words(_ENUMERATION.sub("", text))
    best_number, best_shared = 0 if require_match else 1, 0
    for number, words_of_passage in enumerate(passage_words, start=1):
        shared = len(text_words & words_of_passage)
        if shared > best_shared:
            best_number, best_shared = number, shared
    if require_match and best_shared < min(MIN_SHARED_WORDS, max(1, (len(text_words) + 1) // 2)):
        return 0
    return best_number


# A list item's number or bullet ("2. ", "3) ", "- "): says nothing about where the item came from.
_ENUMERATION = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*\u2022])(?:\s+|$)")


def _matching_words(text: str) -> set[str]:
    """Content words, plus the parts of hyphenated ones ("single-stage" also gives "single" and
    "stage"), so that an answer writing "single stage" matches a passage writing "single-stage"."""
    found = content_words(text)
    return found | {part for word in found if "-" in word for part in content_words(word.replace("-", " "))}


def short_quote(passage_text: str, focus: str, max_chars: int = QUOTE_CHARS) -> str:
    """The sentence of `passage_text` sharing most words with `focus` (the first sentence when
    none does), shortened at a word boundary to at most `max_chars` characters."""
    sentences = split_sentences(passage_text) or [passage_text]
    focus_words = content_words(focus)
    best = max(sentences, key=lambda s: overlap_score(focus_words, s))  # max keeps the first on ties
    return shorten(" ".join(best.split()), max_chars)


def shorten(text: str, max_chars: int) -> str:
    """`text` if it fits, else its longest word-boundary prefix that fits with an ellipsis."""
    if len(text) <= max_chars:
        return text
    cut = text[: max(1, max_chars - 1)]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "\u2026"


def _text_around_marker(answer: str, number: int) -> str:
    """The answer's sentences that carry a marker citing `number`."""
    parts = [s for s in _answer_sentences(answer) if number in cited_numbers(s, number)]
    return " ".join(parts) or answer


_LEADING_MARKERS = re.compile(r"^(?:\[[\d,\s]+\]\s*)+")


def _answer_sentences(answer: str) -> list[str]:
    """Sentences of an answer, with a marker written after the full stop ("... 42 bar. [1]")
    kept with the sentence it follows rather than the next one."""
    sentences: list[str] = []
    for sentence in split_sentences(answer):
        leading = _LEADING_MARKERS.match(sentence)
        if leading and sentences:
            sentences[-1] += " " + leading.group().strip()
            sentence = sentence[leading.end() :]
        if sentence:
            sentences.append(sentence)
    return sentences
