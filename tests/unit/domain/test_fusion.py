"""Relative score fusion (domain/fusion.py): normalisation, weights, margins, ties."""

from __future__ import annotations

import pytest

from ragplatform.domain.fusion import normalised_scores, relative_score_fusion


def test_scores_are_min_max_normalised_over_the_list() -> None:
    assert normalised_scores([("a", 0.8), ("b", 0.6), ("c", 0.4)]) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert normalised_scores([("a", 3.0), ("b", 3.0)]) == {"a": 1.0, "b": 1.0}  # no spread: all count fully
    assert normalised_scores([]) == {}


def test_a_wide_margin_in_one_list_beats_being_second_in_both() -> None:
    # "x" leads the dense list by far and is absent from the sparse one; "y" is second in both.
    # Reciprocal rank fusion would put "y" first (1/62 + 1/62 > 1/61); the scores say "x".
    dense = [("x", 0.90), ("y", 0.52), ("z", 0.50)]
    sparse = [("w", 9.0), ("y", 8.5), ("z", 1.0)]
    fused = relative_score_fusion(dense, sparse, 1.0, 0.5, 10)
    assert [key for key, _ in fused] == ["x", "y", "w", "z"]
    assert [score for _, score in fused] == pytest.approx([1.0, 0.05 + 0.5 * 0.9375, 0.5, 0.0])
    # Weights move the balance: with the sparse list weighted 3x, its best comes first.
    assert relative_score_fusion(dense, sparse, 1.0, 3.0, 1)[0][0] == "w"


def test_limit_and_ties() -> None:
    fused = relative_score_fusion([("a", 0.5), ("b", 0.5)], [("b", 2.0), ("a", 2.0)], 1.0, 1.0, 1)
    assert fused == [("a", 2.0)]  # equal fused scores: the dense list's order
    assert relative_score_fusion([], [(7, 1.0), (8, 0.0)], 1.0, 0.5, 5) == [(7, 0.5), (8, 0.0)]
    assert relative_score_fusion([], [], 1.0, 0.5, 5) == []
