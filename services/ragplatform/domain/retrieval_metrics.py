"""Retrieval quality: is the expected passage among the results, and how high. Pure.

A question expects a document (by file name or document id) and, optionally, a piece of passage
text; a result is relevant when it comes from that document and (if given) its text contains the
expected text (case and whitespace ignored). From the rank of the first relevant result of each
question come the usual figures: hit@k (the share of questions with a relevant result in the
first k) and MRR@k (the mean of 1/rank, counting ranks beyond k as misses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    """What a question should retrieve."""

    question: str
    #: File name or document id of the document that answers the question.
    document: str
    #: Text the relevant passage contains ("": any passage of the document).
    passage_text: str = ""


@dataclass(frozen=True)
class RankedResult:
    """One result, in rank order (a search hit, or a passage an answer cites)."""

    document_id: str
    filename: str
    text: str = ""


@dataclass(frozen=True)
class RetrievalScores:
    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr_at_10: float


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def is_relevant(result: RankedResult, expectation: Expectation) -> bool:
    """True when `result` is from the expected document (file name or id, exactly) and contains
    the expected passage text, if any (case and whitespace ignored)."""
    if expectation.document not in (result.filename, result.document_id):
        return False
    return not expectation.passage_text or _normalise(expectation.passage_text) in _normalise(result.text)


def first_relevant_rank(results: Sequence[RankedResult], expectation: Expectation) -> int | None:
    """The 1-based rank of the first relevant result, or None when there is none."""
    for rank, result in enumerate(results, start=1):
        if is_relevant(result, expectation):
            return rank
    return None


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first relevant result is within the first `k` (0.0 for none)."""
    if not ranks:
        return 0.0
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mrr_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Mean reciprocal rank, a rank beyond `k` (or none) counting 0 (0.0 for no questions)."""
    if not ranks:
        return 0.0
    return sum(1 / rank for rank in ranks if rank is not None and rank <= k) / len(ranks)


def score_ranks(ranks: Sequence[int | None]) -> RetrievalScores:
    """hit@1, hit@5 and MRR@10 of the first-relevant ranks of a set of questions."""
    return RetrievalScores(
        questions=len(ranks),
        hit_at_1=hit_at_k(ranks, 1),
        hit_at_5=hit_at_k(ranks, 5),
        mrr_at_10=mrr_at_k(ranks, 10),
    )
