"""Retrieval metrics (hit@k, MRR@k, what counts as relevant) and question files for `ragplatform eval`."""

from __future__ import annotations

import json

import pytest

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.eval_questions import parse_question_file
from ragplatform.domain.retrieval_metrics import (
    Expectation,
    RankedResult,
    first_relevant_rank,
    hit_at_k,
    is_relevant,
    mrr_at_k,
    score_ranks,
)

PUMP = RankedResult("doc-pump", "zephyr.md", "The Zephyr-9 maximum pressure is\n42   BAR, never more.")
FERRY = RankedResult("doc-ferry", "ferry.txt", "The last ferry leaves at 23:40.")


def test_a_result_is_relevant_by_file_name_or_id_and_contains_the_expected_text() -> None:
    assert is_relevant(PUMP, Expectation("q", "zephyr.md"))
    assert is_relevant(PUMP, Expectation("q", "doc-pump"))
    assert is_relevant(PUMP, Expectation("q", "zephyr.md", "pressure is 42 bar"))  # case and spacing ignored
    assert not is_relevant(PUMP, Expectation("q", "zephyr.md", "43 bar"))
    assert not is_relevant(PUMP, Expectation("q", "Zephyr.md"))  # file names are exact
    assert not is_relevant(FERRY, Expectation("q", "zephyr.md"))


def test_the_first_relevant_rank_counts_from_one() -> None:
    expectation = Expectation("q", "zephyr.md", "42 bar")
    assert first_relevant_rank([PUMP, FERRY], expectation) == 1
    assert first_relevant_rank([FERRY, FERRY, PUMP, PUMP], expectation) == 3
    assert first_relevant_rank([FERRY], expectation) is None
    assert first_relevant_rank([], expectation) is None


def test_hit_at_k_and_mrr_at_k() -> None:
    ranks = [1, 2, None, 6, 11]
    assert hit_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert hit_at_k(ranks, 5) == pytest.approx(2 / 5)
    assert hit_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 2 + 1 / 6) / 5)  # rank 11 is beyond 10
    assert mrr_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert hit_at_k([], 5) == 0.0
    assert mrr_at_k([], 10) == 0.0


def test_scores_bundle_the_usual_figures() -> None:
    scores = score_ranks([1, 3, None, 1])
    assert (scores.questions, scores.hit_at_1, scores.hit_at_5) == (4, 0.5, 0.75)
    assert scores.mrr_at_10 == pytest.approx((1 + 1 / 3 + 1) / 4)


def test_tsv_question_files_with_header_comments_and_optional_passage_text() -> None:
    text = "question\tdocument\tpassage\n# a comment\n\nWhat pressure?\tzephyr.md\t42 bar\nWhen?\tdoc-ferry\n"
    assert parse_question_file("q.tsv", text) == [
        Expectation("What pressure?", "zephyr.md", "42 bar"),
        Expectation("When?", "doc-ferry", ""),
    ]


def test_jsonl_question_files() -> None:
    lines = [
        json.dumps({"question": "What pressure?", "document": "zephyr.md", "passage": "42 bar"}),
        "",
        json.dumps({"question": "When?", "document": "doc-ferry"}),
    ]
    assert parse_question_file("q.jsonl", "\n".join(lines)) == [
        Expectation("What pressure?", "zephyr.md", "42 bar"),
        Expectation("When?", "doc-ferry", ""),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("q.csv", "a,b", "unknown question file type '.csv'"),
        ("q.tsv", "# only a comment\n", "holds no questions"),
        ("q.tsv", "What pressure?\tzephyr.md\n   spaces instead of a tab", "line 2: expected question<TAB>document"),
        ("q.tsv", "What pressure?  zephyr.md", "no tab"),
        ("q.tsv", "What?\t\n", "line 1"),
        ("q.tsv", "a\tb\tc\td", "line 1"),
        ("q.jsonl", '{"question": "What?"', "line 1: not JSON"),
        ("q.jsonl", '["What?", "zephyr.md"]', "expected an object"),
        ("q.jsonl", '{"question": "", "document": "zephyr.md"}', '"question" must be a non-empty string'),
        ("q.jsonl", '{"question": "What?"}', '"document" must be'),
        ("q.jsonl", '{"question": "What?", "document": "d", "passage": 42}', '"passage" must be a string'),
    ],
)
def test_bad_question_files_say_which_line_and_what_to_write(name: str, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_question_file(name, text)
    assert message in str(info.value)
    assert name in str(info.value)
