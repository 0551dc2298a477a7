"""The answer cache's key: which questions count as the same, and what keeps answers apart."""

from __future__ import annotations

import pytest

from ragplatform.gateway.answer_cache import answer_cache_key, normalise_question


@pytest.mark.parametrize(
    ("question", "normalised"),
    [
        ("What is the pressure?", "what is the pressure"),
        ("  WHAT   is\tthe\npressure ?!  ", "what is the pressure"),
        ("What is the pressure...", "what is the pressure"),
        ("\uff57\uff48\uff41\uff54 \uff29\uff33\uff1f", "what is"),  # full-width forms (NFKC)
        ("Straße?", "strasse"),  # case folding, not just lower()
        ("Is 4.2 bar ok? Or 42?", "is 4.2 bar ok? or 42"),  # only trailing punctuation goes
    ],
)
def test_normalise_question(question: str, normalised: str) -> None:
    assert normalise_question(question) == normalised


def key(**changes: object) -> str:
    fields: dict[str, object] = {
        "tenant_id": "acme",
        "question": "What is the pressure?",
        "corpus_version": 3,
        "model": "",
        "top_k": 5,
        "filters": {"team": "pumps", "lang": "en"},
        "score_threshold": 0.0,
    }
    fields.update(changes)
    return answer_cache_key(**fields)  # type: ignore[arg-type]


def test_equivalent_questions_share_a_key() -> None:
    assert key() == key(question="  what is THE pressure ")
    assert key() == key(filters={"lang": "en", "team": "pumps"})  # label order does not matter
    assert key().startswith("answer:")


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": "globex"},
        {"question": "What is the weight?"},
        {"corpus_version": 4},
        {"model": "gpt-4o-mini"},
        {"top_k": 6},
        {"filters": {"team": "pumps"}},
        {"filters": {"team": "drones", "lang": "en"}},
        {"score_threshold": 0.5},
        {"max_tokens": 20},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change: dict[str, object]) -> None:
    assert key(**change) != key()


def test_fields_cannot_run_into_each_other() -> None:
    # A naive concatenation would give these the same key.
    assert answer_cache_key("a", "b c", 1, "", 5, {}, 0.0) != answer_cache_key("a b", "c", 1, "", 5, {}, 0.0)
