"""Follow-up questions into standalone queries: the lexical rewrite, the model prompt and the
check of what a model wrote."""

from __future__ import annotations

import pytest

from ragplatform.domain.models import Role, Turn
from ragplatform.domain.query_rewrite import (
    MAX_ADDED_WORDS,
    build_rewrite_messages,
    clean_rewritten_query,
    is_follow_up,
    lexical_rewrite,
)

ENABLE = "How do I enable maintenance mode on the Harbor gate controller?"
HISTORY = [
    Turn(Role.USER, ENABLE),
    Turn(Role.ASSISTANT, "Hold the MODE key for five seconds until the amber lamp blinks [1]."),
]


@pytest.mark.parametrize(
    "question",
    ["and how do I undo that?", "What about the Kestrel X2?", "Why?", "Is it safe?", "How long do those last?"],
)
def test_questions_that_lean_on_the_conversation_are_follow_ups(question: str) -> None:
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [ENABLE, "What is the maximum pressure of the Zephyr-9 pump?", "When does the last ferry leave Pier 7?"],
)
def test_questions_that_name_their_subject_stand_alone(question: str) -> None:
    assert not is_follow_up(question)


def test_a_follow_up_gets_the_previous_questions_key_words_as_written() -> None:
    query = lexical_rewrite("and how do I undo that?", HISTORY)
    assert query == "and how do I undo that? enable maintenance mode Harbor gate controller"


def test_a_standalone_question_or_no_history_is_searched_as_asked() -> None:
    question = "  When does the last ferry   leave Pier 7? "
    assert lexical_rewrite(question, HISTORY) == "When does the last ferry leave Pier 7?"
    assert lexical_rewrite("and how do I undo that?", []) == "and how do I undo that?"
    # Only assistant turns: nothing the user said to borrow from.
    assert lexical_rewrite("and that?", [HISTORY[1]]) == "and that?"


def test_words_the_question_already_has_are_not_repeated() -> None:
    query = lexical_rewrite("And how do I leave maintenance mode?", HISTORY)
    assert query == "And how do I leave maintenance mode? enable Harbor gate controller"


def test_a_chain_of_follow_ups_reaches_back_to_the_question_that_named_the_subject() -> None:
    history = [
        Turn(Role.USER, "What is the maximum pressure of the Zephyr-9 pump?"),
        Turn(Role.ASSISTANT, "42 bar [1]."),
        Turn(Role.USER, "And its flow?"),
        Turn(Role.ASSISTANT, "310 cubic metres per hour [1]."),
    ]
    assert lexical_rewrite("Is it quiet?", history) == "Is it quiet? flow maximum pressure Zephyr-9 pump"
    # The chain stops at the first question that stood alone.
    older = [Turn(Role.USER, "When does the ferry leave?"), *history]
    assert "ferry" not in lexical_rewrite("Is it quiet?", older)


def test_at_most_max_added_words_are_appended() -> None:
    long_question = " ".join(f"word{i}" for i in range(40))
    query = lexical_rewrite("and that?", [Turn(Role.USER, long_question)])
    assert query.split()[2:] == [f"word{i}" for i in range(MAX_ADDED_WORDS)]


def test_the_model_sees_the_conversation_and_is_asked_for_a_query_not_an_answer() -> None:
    long_answer = Turn(Role.ASSISTANT, "lamp " * 200)
    messages = build_rewrite_messages("and how do I undo that?", [HISTORY[0], long_answer])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "standalone search query" in messages[0]["content"]
    prompt = messages[1]["content"]
    assert f"User: {ENABLE}" in prompt
    assert "Last question: and how do I undo that?" in prompt
    assert len(prompt) < 600  # the long answer is shortened


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        ("How do I disable maintenance mode on the Harbor gate controller?", None),
        ('Query: "disable maintenance mode Harbor gate controller"\n\nThis query ...', "disable maintenance"),
        ("\n\nStandalone search query: undo maintenance mode", "undo maintenance mode"),
        ("", ""),
        ("   \n  ", ""),
        ("word " * 400, ""),  # an essay, not a query
    ],
)
def test_a_models_reply_is_reduced_to_the_query_or_rejected(reply: str, query: str | None) -> None:
    cleaned = clean_rewritten_query(reply, "and how do I undo that?")
    if query is None:
        assert cleaned == reply
    elif query:
        assert cleaned.startswith(query)
        assert "\n" not in cleaned
        assert '"' not in cleaned
    else:
        assert cleaned == ""


def test_a_rewrite_that_drops_the_questions_own_words_is_rejected() -> None:
    # Seen with SmolLM2-135M: the previous answer echoed back as the "rewrite".
    question = "And what is its impeller made of?"
    assert clean_rewritten_query("The maximum pressure of the Zephyr-9 pump is 42 bar.", question) == ""
    assert clean_rewritten_query("What is the Zephyr-9 pump's impeller made of?", question) != ""
    # A question with one content word may be paraphrased ("undo" -> "leave").
    assert clean_rewritten_query("How do I leave maintenance mode?", "and how do I undo that?") != ""
