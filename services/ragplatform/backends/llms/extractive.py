"""The embedded answerer: no language model, it quotes the passages' sentences that best match
the question, with [n] citations, and says plainly that it is extractive."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent, AnswerRequest
from ragplatform.domain.citations import assemble_citations, shorten
from ragplatform.domain.models import ScoredPassage, TokenUsage
from ragplatform.domain.text_matching import content_words, overlap_score, split_sentences

#: Every extractive answer starts with this, so nobody mistakes it for a model's answer.
EXTRACTIVE_PREFIX = "Extractive answer (no language model configured)"
NOTHING_FOUND = (
    f"{EXTRACTIVE_PREFIX}: I found nothing in your documents that answers this question. "
    "Ingest documents that cover it, or rephrase the question with the words your documents use."
)
MODEL_NAME = "extractive"

# A quoted sentence longer than this is shortened (a run-on table row, a paragraph without stops).
_SENTENCE_CHARS = 400
_DELTA = re.compile(r"\S+\s*")
_KEEP_RATIO = 0.6


@dataclass(frozen=True, order=True)
class _Candidate:
    # Sorted best first: higher score, then better-ranked passage, then earlier sentence.
    neg_score: float
    passage_rank: int
    position: int
    sentence: str


class ExtractiveAnswerGenerator:
    """`AnswerGenerator` that quotes. Callers may rely on: the answer text starts with
    `EXTRACTIVE_PREFIX`; each quote is followed by the [n] marker of its passage (numbered as
    given in the request, from 1); `AnswerDone.extractive` is True and `model` is "extractive";
    usage counts words, not model tokens (there is no model). With no passages the answer says it
    found nothing and has no citations."""

    def __init__(self, max_sentences: int = 3, max_passages: int = 3, words_per_delta: int = 4) -> None:
        self._max_sentences = max_sentences
        self._max_passages = max_passages
        self._words_per_delta = words_per_delta

    @property
    def name(self) -> str:
        return MODEL_NAME

    async def generate(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        answer = self.compose(request)
        pieces = _DELTA.findall(answer)
        for i in range(0, len(pieces), self._words_per_delta):
            yield AnswerDelta("".join(pieces[i : i + self._words_per_delta]))
            await asyncio.sleep(0)  # let other streams run between deltas
        prompt_words = len(request.question.split()) + sum(
            len(p.text.split()) for p in request.passages[: self._max_passages]
        )
        yield AnswerDone(
            citations=assemble_citations(answer, request.passages),
            usage=TokenUsage(prompt_tokens=prompt_words, completion_tokens=len(answer.split())),
            model=MODEL_NAME,
            finish_reason="stop",
            extractive=True,
        )

    def compose(self, request: AnswerRequest) -> str:
        """The whole answer text (what `generate` streams)."""
        if not request.passages:
            return NOTHING_FOUND
        chosen = self._choose(request.question, request.passages)
        word_budget = request.max_tokens if request.max_tokens > 0 else None
        if chosen:
            lines = [f"{EXTRACTIVE_PREFIX}, quoting the passages that best match your question:"]
        else:
            # Retrieval found passages, but none shares a word with the question: show the best
            # one and say so, rather than pretending it answers.
            lines = [f"{EXTRACTIVE_PREFIX}: no passage uses the words of your question; the closest one says:"]
            chosen = [_Candidate(0.0, 0, 0, (split_sentences(request.passages[0].text) or [""])[0])]
        used_words = 0
        for candidate in chosen:
            quote = shorten(" ".join(candidate.sentence.split()), _SENTENCE_CHARS)
            line = f"\u201c{quote}\u201d [{candidate.passage_rank + 1}]"
            if word_budget is not None and used_words and used_words + len(line.split()) > word_budget:
                break
            used_words += len(line.split())
            lines.append(line)
        return "\n\n".join(lines)

    def _choose(self, question: str, passages: list[ScoredPassage]) -> list[_Candidate]:
        question_words = content_words(question)
        candidates = []
        for rank, passage in enumerate(passages[: self._max_passages]):
            for position, sentence in enumerate(split_sentences(passage.text)):
                score = overlap_score(question_words, sentence)
                if score > 0:
                    candidates.append(_Candidate(-score, rank, position, sentence))
        if not candidates:
            return []
        candidates.sort()
        best = -candidates[0].neg_score
        # Keep sentences nearly as good as the best; the rest (often a heading that repeats two
        # of the question's words) would be noise.
        good = [c for c in candidates if -c.neg_score >= best * _KEEP_RATIO][: self._max_sentences]
        unique = {c.sentence: c for c in reversed(good)}  # a sentence repeated by overlapping chunks
        return sorted(unique.values(), key=lambda c: (c.passage_rank, c.position))

    async def close(self) -> None:
        """Nothing to release."""
