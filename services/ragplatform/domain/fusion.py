"""Relative score fusion of a dense and a sparse candidate list: the hybrid default.

Each list's scores are min-max normalised over the candidates it returned (its best becomes 1,
its last 0; a list whose scores are all equal gives each candidate 1), and a candidate's fused
score is `dense_weight * dense + sparse_weight * sparse` (0 from a list that did not return it) -
the convex combination of normalised scores that Bruch, Gai and Ingber ("An Analysis of Fusion
Functions for Hybrid Retrieval", ACM TOIS 2023) found better than reciprocal rank fusion, and
Weaviate's hybrid default ("relativeScoreFusion"). Unlike RRF it keeps *how much* better a
list's first candidate is than its second: a page the embedding ranks first by a wide margin is
not overtaken by one that is merely second in both lists.

Measured (bench/retrieval_quality.py --corpus all, docs/retrieval.md): with the dense list weighted
1 and the sparse list anywhere in 0.3-0.7, hit@1 is at least RRF's on all three benchmark corpora;
with equal weights it equals RRF's. Both stores run it the same way: the two lists from one
engine call without payloads, fused here, then the payloads of the best `limit` fetched. Pure.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Final, TypeVar

from ragplatform.domain.models import FusionMethod

Key = TypeVar("Key", bound=Hashable)

# The sparse list's weight (the dense list's is 1) when RAG_FUSION_SPARSE_WEIGHT is unset:
# `relative` with the sparse list at half weight (every weight in 0.3-0.7 measured at least RRF's
# hit@1 on all three benchmark corpora); RRF's equal weights (heavier dense RRF weights lost).
DEFAULT_SPARSE_WEIGHT: Final[Mapping[FusionMethod, float]] = {"relative": 0.5, "rrf": 1.0, "dbsf": 1.0}


def normalised_scores(hits: Sequence[tuple[Key, float]]) -> dict[Key, float]:
    """Each hit's score min-max normalised into [0, 1] over the list, by key."""
    if not hits:
        return {}
    scores = [score for _, score in hits]
    low, high = min(scores), max(scores)
    if high <= low:
        return {key: 1.0 for key, _ in hits}
    return {key: (score - low) / (high - low) for key, score in hits}


def relative_score_fusion(
    dense: Sequence[tuple[Key, float]],
    sparse: Sequence[tuple[Key, float]],
    dense_weight: float,
    sparse_weight: float,
    limit: int,
) -> list[tuple[Key, float]]:
    """The best `limit` keys of both (key, score) lists by fused score (see the module
    docstring), best first, each with that score. Ties keep the dense list's order, then the
    sparse list's."""
    dense_norm = normalised_scores(dense)
    sparse_norm = normalised_scores(sparse)
    keys = list(dict.fromkeys([*(key for key, _ in dense), *(key for key, _ in sparse)]))
    fused = [(key, dense_weight * dense_norm.get(key, 0.0) + sparse_weight * sparse_norm.get(key, 0.0)) for key in keys]
    # sorted() is stable: equal scores keep the order of `keys`.
    return sorted(fused, key=lambda item: -item[1])[:limit]
