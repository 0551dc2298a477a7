"""The embedded extractive answerer, on passages from the real test corpus."""

from __future__ import annotations

from pathlib import Path

from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent, AnswerRequest
from ragplatform.backends.llms.extractive import (
    EXTRACTIVE_PREFIX,
    NOTHING_FOUND,
    ExtractiveAnswerGenerator,
)
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.parsing import parse_document
from tests.support import corpus


def corpus_passages(*paths: Path) -> list[ScoredPassage]:
    """Each corpus file parsed and chunked as the worker would, in the order given."""
    passages = []
    for path in paths:
        parsed = parse_document(path.read_bytes(), path.name, "")
        for chunk in chunk_text(parsed.text, lambda s: len(s.split()), 120, 20):
            passages.append(
                ScoredPassage(
                    chunk_id=f"{path.name}#{chunk.index}",
                    document_id=path.name,
                    filename=path.name,
                    chunk_index=chunk.index,
                    text=chunk.text,
                    score=0.5,
                )
            )
    return passages


async def run(request: AnswerRequest) -> tuple[str, AnswerDone, list[AnswerEvent]]:
    events = [event async for event in ExtractiveAnswerGenerator().generate(request)]
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    dones = [e for e in events if isinstance(e, AnswerDone)]
    assert len(dones) == 1, "exactly one AnswerDone"
    assert events[-1] is dones[0], "AnswerDone comes last"
    return "".join(d.text for d in deltas), dones[0], events


async def test_quotes_the_sentence_that_answers_and_cites_its_document() -> None:
    passages = corpus_passages(corpus.FERRY_TXT, corpus.ZEPHYR_MD, corpus.AURORA_HTML)
    text, done, events = await run(AnswerRequest("t1", "What is the maximum pressure of the Zephyr-9 pump?", passages))
    assert text.startswith(EXTRACTIVE_PREFIX)
    assert "42 bar" in text
    assert len(events) > 3, "the answer is streamed in several deltas"
    assert done.extractive
    assert done.model == "extractive"
    assert done.finish_reason == "stop"
    assert done.citations, "the quote is cited"
    assert done.citations[0].filename == corpus.ZEPHYR_MD.name
    assert "42 bar" in done.citations[0].quote
    # Markers refer to the request's numbering.
    assert f"[{done.citations[0].index}]" in text
    assert passages[done.citations[0].index - 1].filename == corpus.ZEPHYR_MD.name


async def test_every_corpus_fact_is_found_among_mixed_passages() -> None:
    distractors = corpus_passages(corpus.FERRY_TXT, corpus.AURORA_HTML, corpus.KESTREL_PDF)
    for fact in corpus.FACTS:
        relevant = [
            p
            for p in corpus_passages(corpus.CORPUS_DIR / fact.filename)
            if fact.answer_contains in " ".join(p.text.split())
        ]
        others = [p for p in distractors if p.filename != fact.filename]
        # The right passage is not always first: retrieval ranks are imperfect.
        passages = [others[0], relevant[0], others[1]]
        text, done, _ = await run(AnswerRequest("t1", fact.question, passages))
        assert fact.answer_contains in " ".join(text.split()), fact
        assert fact.filename in {c.filename for c in done.citations}, fact


async def test_usage_counts_words() -> None:
    passages = corpus_passages(corpus.FERRY_TXT)
    text, done, _ = await run(AnswerRequest("t1", "When does the last night ferry leave?", passages))
    assert done.usage.completion_tokens == len(text.split())
    question = "When does the last night ferry leave?"
    assert done.usage.prompt_tokens == len(question.split()) + sum(len(p.text.split()) for p in passages[:3])


async def test_no_passages_says_nothing_was_found() -> None:
    text, done, _ = await run(AnswerRequest("t1", "What is the meaning of life?", []))
    assert text == NOTHING_FOUND
    assert "found nothing in your documents" in text
    assert done.citations == []


async def test_unrelated_passages_are_shown_as_closest_not_as_an_answer() -> None:
    passages = corpus_passages(corpus.AURORA_HTML)
    text, done, _ = await run(AnswerRequest("t1", "Quantum chromodynamics?", passages))
    assert "no passage uses the words of your question" in text
    assert [c.index for c in done.citations] == [1]


async def test_max_tokens_limits_the_quotes() -> None:
    passages = corpus_passages(corpus.NORDLYS_TXT)
    question = "What does the station crew do about power, water, generators and heating?"
    long_text, _, _ = await run(AnswerRequest("t1", question, passages))
    short_text, _, _ = await run(AnswerRequest("t1", question, passages, max_tokens=5))
    assert short_text.count("\u201c") == 1 < long_text.count("\u201c")
