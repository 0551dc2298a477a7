"""Citation assembly and the prompt built around numbered passages."""

from __future__ import annotations

from ragplatform.domain.citations import (
    assemble_citations,
    build_context,
    cited_numbers,
    infer_citations,
    is_no_answer,
    short_quote,
    shorten,
)
from ragplatform.domain.models import Role, ScoredPassage, Turn
from ragplatform.domain.prompts import NO_ANSWER, SYSTEM_PROMPT, build_chat_messages


def passage(n: int, text: str, filename: str = "") -> ScoredPassage:
    return ScoredPassage(
        chunk_id=f"chunk-{n}",
        document_id=f"doc-{n}",
        filename=filename or f"file-{n}.txt",
        chunk_index=n,
        text=text,
        score=1.0 - n / 10,
    )


PASSAGES = [
    passage(1, "The Zephyr-9 pump is built in Tromsø. Its maximum pressure is 42 bar.", "zephyr.md"),
    passage(2, "The last night ferry leaves Pier 7 at 23:40.\nBicycles cost 3 credits.", "ferry.txt"),
    passage(3, "The Aurora Café serves cardamom cold brew.", "aurora.html"),
]


def test_context_numbers_passages_from_one_with_filenames() -> None:
    context = build_context(PASSAGES)
    assert context.split("\n\n") == [
        "[1] zephyr.md: The Zephyr-9 pump is built in Tromsø. Its maximum pressure is 42 bar.",
        "[2] ferry.txt: The last night ferry leaves Pier 7 at 23:40. Bicycles cost 3 credits.",
        "[3] aurora.html: The Aurora Café serves cardamom cold brew.",
    ]


def test_cited_numbers_in_first_citation_order_without_inventions() -> None:
    answer = "Ferries leave at 23:40 [2]. The pump reaches 42 bar [1, 2][2]. See also [9] and [0] and [x]."
    assert cited_numbers(answer, len(PASSAGES)) == [2, 1]
    assert cited_numbers("No markers at all.", 3) == []


def test_citations_point_at_the_cited_passages_with_matching_quotes() -> None:
    answer = "The last ferry leaves at 23:40 [2]. The Zephyr-9 maximum pressure is 42 bar [1]."
    citations = assemble_citations(answer, PASSAGES)
    assert [(c.index, c.filename, c.document_id, c.chunk_id) for c in citations] == [
        (2, "ferry.txt", "doc-2", "chunk-2"),
        (1, "zephyr.md", "doc-1", "chunk-1"),
    ]
    # The quote is the passage sentence the answer used, not just its first sentence.
    assert citations[1].quote == "Its maximum pressure is 42 bar."
    assert citations[0].quote == "The last night ferry leaves Pier 7 at 23:40."
    assert citations[0].score == PASSAGES[1].score


def test_an_answer_that_found_nothing_or_had_no_passages_cites_nothing() -> None:
    assert assemble_citations(NO_ANSWER, PASSAGES) == []
    assert assemble_citations(f"Sorry. {NO_ANSWER.upper()} Try again", PASSAGES) == []
    assert assemble_citations("Answer [1].", []) == []
    assert assemble_citations("   ", PASSAGES) == []


def test_marked_citations_are_not_inferred() -> None:
    assert [c.inferred for c in assemble_citations("It is 42 bar [1].", PASSAGES)] == [False]


def test_an_answer_without_markers_is_attributed_sentence_by_sentence() -> None:
    answer = (
        "The night ferry leaves Pier 7 at 23:40, and bicycles cost 3 credits. The pump's maximum pressure is 42 bar!"
    )
    citations = assemble_citations(answer, PASSAGES)
    assert [(c.index, c.filename, c.chunk_id, c.inferred) for c in citations] == [
        (2, "ferry.txt", "chunk-2", True),
        (1, "zephyr.md", "chunk-1", True),
    ]
    assert citations[1].quote == "Its maximum pressure is 42 bar."
    assert citations[1].score == PASSAGES[0].score


def test_invalid_markers_are_replaced_by_inferred_citations() -> None:
    citations = assemble_citations("The Aurora Café serves cardamom cold brew [7].", PASSAGES)
    assert [(c.index, c.inferred) for c in citations] == [(3, True)]


def test_an_answer_sharing_no_sentence_with_any_passage_still_cites_its_closest_passage() -> None:
    # One shared word is not enough to attribute a long sentence, but the answer was written from
    # these passages: it is cited to the passage sharing most words with the whole answer.
    answer = "Cyclists should expect some charges when travelling with their bicycles on board."
    assert [(c.index, c.inferred) for c in infer_citations(answer, PASSAGES)] == [(2, True)]
    # Nothing in common at all: the best-ranked passage.
    assert [c.index for c in infer_citations("Hello there, friend.", PASSAGES)] == [1]


def test_no_answer_is_recognised_inside_other_words() -> None:
    assert is_no_answer(f"I checked. {NO_ANSWER}")
    assert not is_no_answer("The documents contain the answer: 42 bar.")


def test_quotes_are_short_and_cut_between_words() -> None:
    long_sentence = "word " * 100 + "end."
    quote = short_quote(long_sentence, "anything", max_chars=50)
    assert len(quote) <= 50
    assert quote.endswith("\u2026")
    assert quote[:-1].split() == ["word"] * len(quote[:-1].split())
    assert shorten("short", 50) == "short"


def test_quote_falls_back_to_the_first_sentence() -> None:
    assert short_quote("First one. Second one.", "unrelated words") == "First one."


def test_prompt_asks_for_citations_and_honesty() -> None:
    assert "[n]" in SYSTEM_PROMPT
    assert NO_ANSWER in SYSTEM_PROMPT
    assert "only" in SYSTEM_PROMPT.lower()


def test_chat_messages_carry_history_then_passages_and_question() -> None:
    history = [
        Turn(Role.USER, "old question 1"),
        Turn(Role.ASSISTANT, "old answer 1"),
        Turn(Role.USER, "old question 2"),
        Turn(Role.ASSISTANT, "old answer 2"),
    ]
    messages = build_chat_messages("  What pressure?  ", PASSAGES[:1], history, max_history_turns=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "old question 2"
    last = messages[-1]["content"]
    assert "[1] zephyr.md: The Zephyr-9 pump" in last
    assert last.endswith("Question: What pressure?")


def test_chat_messages_without_passages_say_so() -> None:
    messages = build_chat_messages("Anything?", [], [], max_history_turns=0)
    assert len(messages) == 2
    assert "(no passages were found)" in messages[-1]["content"]


def test_inference_ignores_list_numbers_and_matches_hyphenated_words_by_their_parts() -> None:
    # Seen with SmolLM2: "2. A single stage centrifugal" went to a passage that shared only "2".
    passages = [
        passage(1, "The Zephyr-9 is a single-stage centrifugal pump. Its maximum pressure is 42 bar.", "zephyr.md"),
        passage(2, "Station Nordlys has 2 diesel generators and a crew of nine.", "nordlys.txt"),
    ]
    answer = "1. The maximum pressure is 42 bar.\n2. A single stage centrifugal"
    assert [(c.index, c.inferred) for c in assemble_citations(answer, passages)] == [(1, True)]
