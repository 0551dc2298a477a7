"""Citations: numbering passages for a prompt, and turning an answer's [n] markers back into the
passages they cite. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragplatform.domain.models import Citation, ScoredPassage
from ragplatform.domain.text_matching import content_words, overlap_score, split_sentences

#: Longest quote attached to a citation.
QUOTE_CHARS = 200

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
    """One `Citation` per passage the answer cites, in order of first citation. `index` is the
    number used in the answer; `quote` is the passage's sentence that best matches what the
    answer says next to the marker, at most `quote_chars` characters."""
    citations = []
    for number in cited_numbers(answer, len(passages)):
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
