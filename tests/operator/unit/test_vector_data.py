"""The operator's twin of the transition rules: a spec that would orphan the stored vectors."""

from __future__ import annotations

from typing import Any

import pytest

from ragplatform_operator.spec import (
    COLLECTION_FROZEN,
    EMBEDDING_DIMENSION_FROZEN,
    EMBEDDING_MODEL_FROZEN,
    STORE_KIND_FROZEN,
    parse_spec,
)
from ragplatform_operator.vector_data import orphaning_changes, stored_vectors_of
from tests.operator.unit.conftest import load_example


def minimal_spec(**changes: Any) -> Any:
    raw = load_example("minimal")["spec"]
    for dotted, value in changes.items():
        block, field = dotted.split("__")
        raw[block] = {**raw[block], field: value}
    return parse_spec(raw)


def test_the_record_is_what_the_vectors_depend_on() -> None:
    stored = stored_vectors_of(minimal_spec())
    assert (stored.collection, stored.store) == ("ragplatform_chunks", "managed")


def test_the_same_spec_or_other_changes_are_safe() -> None:
    stored = stored_vectors_of(minimal_spec())
    assert orphaning_changes(minimal_spec(), stored) == []
    assert orphaning_changes(minimal_spec(embedding__url="https://other.example/v1"), stored) == []
    assert orphaning_changes(minimal_spec(), None) == []  # nothing recorded yet: a new platform


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embedding__model": "another-model"}, EMBEDDING_MODEL_FROZEN),
        ({"embedding__dimension": 768}, EMBEDDING_DIMENSION_FROZEN),
        ({"vectorStore__collection": "chunks_v2"}, COLLECTION_FROZEN),
    ],
)
def test_each_frozen_field_is_refused_with_its_message_and_the_value_to_restore(
    changes: dict[str, Any], message: str
) -> None:
    stored = stored_vectors_of(minimal_spec())
    problems = orphaning_changes(minimal_spec(**changes), stored)
    assert len(problems) == 1
    assert message in problems[0]
    assert "set it back to" in problems[0]


def test_switching_the_kind_of_store_is_refused() -> None:
    stored = stored_vectors_of(minimal_spec())
    raw = load_example("minimal")["spec"]
    raw["vectorStore"] = {"external": {"url": "https://qdrant.example:6333"}}
    problems = orphaning_changes(parse_spec(raw), stored)
    assert [STORE_KIND_FROZEN in p for p in problems] == [True]
