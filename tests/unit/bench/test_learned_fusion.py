"""The learned-fusion bench's features and loss (bench/learned_fusion.py), on hand-made lists:
with the default's weights it must rank exactly as relative fusion does (so that its LOCO table
compares like with like), and its gradient must be the loss's."""

from __future__ import annotations

import math

import numpy as np

from bench.learned_fusion import FEATURES, PRIOR, Question, Stack, _loss, candidate_features, stack
from ragplatform.domain.fusion import relative_score_fusion

DENSE = [(0, 0.80), (1, 0.70), (2, 0.60), (3, 0.50)]
SPARSE = [(2, 9.0), (4, 6.0), (1, 3.0)]
DOCUMENTS = ["a", "a", "b", "c", "b"]
CHUNK_TERMS = [{"vacuum"}, {"vacuum", "table"}, {"table"}, set(), {"vacuum", "table", "full"}]
HEADING_TERMS = [set(), {"vacuum"}, set(), set(), {"table"}]


def features() -> tuple[list[int], np.ndarray]:
    return candidate_features(DENSE, SPARSE, {"vacuum", "table"}, DOCUMENTS, CHUNK_TERMS, HEADING_TERMS)


def test_each_feature_is_what_its_name_says() -> None:
    candidates, x = features()
    assert candidates == [0, 1, 2, 3, 4]
    row = dict(zip(FEATURES, x[4], strict=True))  # chunk 4: sparse only, second there
    assert row["dense"] == 0.0
    assert row["sparse"] == 0.5
    assert row["cosine"] == 0.50  # the dense list's last
    assert math.isclose(row["sparse/max"], 6.0 / 9.0)
    assert row["1/dense rank"] == 0.0
    assert row["1/sparse rank"] == 0.5
    assert row["in both"] == 0.0
    assert row["query terms in chunk"] == 1.0
    assert row["query terms in heading"] == 0.5
    # its document "b" also holds chunk 2: dense 2/3 of the way down, sparse first
    assert math.isclose(row["doc best dense"], (0.60 - 0.50) / (0.80 - 0.50))
    assert row["doc best sparse"] == 1.0
    assert math.isclose(row["doc chunks"], math.log(3.0))


def test_the_default_weights_rank_as_relative_fusion_does() -> None:
    candidates, x = features()
    scores = x @ PRIOR
    order = [candidates[k] for k in np.argsort(-scores, kind="stable")]
    fused = relative_score_fusion(DENSE, SPARSE, 1.0, 0.5, 100)
    assert order == [key for key, _ in fused]
    assert np.allclose(sorted(scores, reverse=True), [score for _, score in fused])


def test_the_loss_gradient_is_the_loss_s_derivative() -> None:
    candidates, x = features()
    question = Question(candidates, x, np.array([DOCUMENTS[i] == "b" for i in candidates]))
    other = Question(candidates[:3], x[:3], np.array([True, False, False]))

    class Corpus:
        def __init__(self, questions: list[Question]) -> None:
            self.questions = questions

    data: Stack = stack([Corpus([question]), Corpus([other])])  # type: ignore[list-item]
    mask = np.ones(len(FEATURES), dtype=bool)
    params = np.concatenate([[0.7], PRIOR + np.linspace(-0.3, 0.3, len(FEATURES))])
    value, gradient = _loss(params, data, 0.1, mask)
    step = 1e-6
    numeric = [
        (_loss(params + step * e, data, 0.1, mask)[0] - _loss(params - step * e, data, 0.1, mask)[0]) / (2 * step)
        for e in np.eye(len(params))
    ]
    assert value > 0
    assert np.allclose(gradient, numeric, atol=1e-6)
