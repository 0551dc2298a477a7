"""Offline replay of `bench/retrieval_quality.py`'s default pipeline, to judge a general retrieval
change on every corpus in seconds before building it into the stores:

    python bench/retrieval_replay.py [--corpus all|apachedoc|djangodoc|manpages|pgdoc|pydoc|sqlitedoc] [--idea NAME ...]

Each corpus is indexed as the ingestion worker indexes it (the bench's own `worker_points`, with
its embedding cache: run the bench once first), then searched in memory: exact dense cosine
(the embedded store searches collections this small exactly), Okapi BM25 over the same sparse
vectors with Qdrant's IDF (`ln(1 + (N - n + 0.5) / (n + 0.5))`), the platform's relative score
fusion (`domain.fusion`) of the two top-50 lists, and the first citation of the extractive
answerer over the top 5, as the bench measures it. The `default` idea reproduces the bench's
DEFAULT row exactly on the five corpora it was checked on (2026-11-30; not checked on
djangodoc, added later); the other ideas are the changes tried for the held-out Apache set
(docs/retrieval.md, "A fifth corpus"). Prints hit@1, hit@5, MRR@10 and cite@1 per corpus and
idea.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrieval_quality import CORPORA, TENANT, CachedEmbedder, Scores, load_questions, score, worker_points
from ragplatform.backends.llms.base import AnswerRequest
from ragplatform.backends.llms.extractive import ExtractiveAnswerGenerator
from ragplatform.domain.chunk_context import contextualized
from ragplatform.domain.citations import assemble_citations
from ragplatform.domain.fusion import DEFAULT_SPARSE_WEIGHT, normalised_scores, relative_score_fusion
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.sparse_encoding import Bm25Parameters, document_vector, query_vector, term_id, tokenize

CANDIDATES = 50  # RAG_FUSION_CANDIDATES
SPARSE_WEIGHT = DEFAULT_SPARSE_WEIGHT["relative"]
Hits = list[tuple[int, float]]  # (chunk number, score), best first


@dataclass(frozen=True)
class Corpus:
    questions: list[tuple[str, str]]
    files: list[str]
    indexes: list[int]
    texts: list[str]
    headings: list[str]
    vectors: NDArray[np.float64]  # unit rows
    query_vectors: NDArray[np.float64]  # unit rows, one per question


async def load_corpus(name: str, embedder: CachedEmbedder) -> Corpus:
    documents = CORPORA[name][0]()
    questions, _ = load_questions(CORPORA[name][1], set(documents))
    points = await worker_points(documents, embedder)
    queries = [await embedder.embed_query(q) for q, _ in questions]
    return Corpus(
        questions,
        [p.filename for p in points],
        [p.chunk_index for p in points],
        [p.text for p in points],
        [p.heading for p in points],
        _unit_rows([p.vector for p in points]),
        _unit_rows(queries),
    )


def _unit_rows(rows: list[list[float]]) -> NDArray[np.float64]:
    matrix = np.asarray(rows, dtype=np.float64)
    normalised: NDArray[np.float64] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normalised


class Replay:
    """One corpus's dense and BM25 search, in memory."""

    def __init__(self, corpus: Corpus, bm25: Bm25Parameters = Bm25Parameters()) -> None:
        self.corpus = corpus
        self.postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for chunk, (heading, text) in enumerate(zip(corpus.headings, corpus.texts, strict=True)):
            vector = document_vector(contextualized(heading, text), bm25)
            for term, weight in zip(vector.indices, vector.values, strict=True):
                self.postings[term].append((chunk, weight))
        n = len(corpus.texts)
        self.idf = {term: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for term, p in self.postings.items()}

    def dense(self, question: int, vector: NDArray[np.float64] | None = None) -> Hits:
        query = self.corpus.query_vectors[question] if vector is None else vector
        scores = self.corpus.vectors @ query
        best = np.argsort(-scores, kind="stable")[:CANDIDATES]
        return [(int(i), float(scores[i])) for i in best]

    def sparse(self, question: str, weights: dict[int, float] | None = None) -> Hits:
        terms = weights if weights is not None else dict.fromkeys(query_vector(question).indices, 1.0)
        totals: dict[int, float] = defaultdict(float)
        for term, query_weight in terms.items():
            for chunk, weight in self.postings.get(term, ()):
                totals[chunk] += query_weight * self.idf[term] * weight
        return sorted(totals.items(), key=lambda hit: -hit[1])[:CANDIDATES]

    def passages(self, hits: Hits) -> list[ScoredPassage]:
        c = self.corpus
        return [ScoredPassage(str(i), c.files[i], c.files[i], c.indexes[i], c.texts[i], s) for i, s in hits]


def fuse(dense: Hits, sparse: Hits) -> Hits:
    return relative_score_fusion(dense, sparse, 1.0, SPARSE_WEIGHT, 2 * CANDIDATES)


Idea = Callable[[Replay, int, str], Hits]


def default(replay: Replay, question: int, text: str) -> Hits:
    return fuse(replay.dense(question), replay.sparse(text))


def document_fusion(replay: Replay, question: int, text: str, weight: float = 2.0) -> Hits:
    """Each list's best chunk per document, fused per document; `weight` times that added."""
    dense, sparse = replay.dense(question), replay.sparse(text)
    files = replay.corpus.files

    def best_per_document(hits: Hits) -> dict[str, float]:
        best: dict[str, float] = {}
        for chunk, value in hits:
            best[files[chunk]] = max(value, best.get(files[chunk], value))
        return normalised_scores(list(best.items()))

    by_dense, by_sparse = best_per_document(dense), best_per_document(sparse)
    documents = {f: by_dense.get(f, 0.0) + SPARSE_WEIGHT * by_sparse.get(f, 0.0) for f in {*by_dense, *by_sparse}}
    return sorted(((i, s + weight * documents[files[i]]) for i, s in fuse(dense, sparse)), key=lambda h: -h[1])


def heading_match(replay: Replay, question: int, text: str, weight: float = 0.1) -> Hits:
    """A third list: the IDF of the query's terms found in the chunk's heading."""
    dense, sparse = replay.dense(question), replay.sparse(text)
    terms = set(query_vector(text).indices)
    candidates = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in sparse]))
    headings = [(i, _idf_in(replay, terms, replay.corpus.headings[i])) for i in candidates]
    d, s, h = normalised_scores(dense), normalised_scores(sparse), normalised_scores(headings)
    fused = [(i, d.get(i, 0.0) + SPARSE_WEIGHT * s.get(i, 0.0) + weight * h.get(i, 0.0)) for i in candidates]
    return sorted(fused, key=lambda hit: -hit[1])


def _idf_in(replay: Replay, terms: set[int], text: str) -> float:
    """The summed IDF of `terms` that `text` contains."""
    return sum(replay.idf.get(t, 0.0) for t in {term_id(word) for word in tokenize(text)} & terms)


def rocchio(replay: Replay, question: int, text: str, beta: float = 0.3, top: int = 5) -> Hits:
    """Dense pseudo-relevance feedback: the query plus `beta` times the mean of the fused top."""
    sparse = replay.sparse(text)
    first = [i for i, _ in fuse(replay.dense(question), sparse)[:top]]
    vector = replay.corpus.query_vectors[question] + beta * replay.corpus.vectors[first].mean(axis=0)
    return fuse(replay.dense(question, vector / np.linalg.norm(vector)), sparse)


def rm3(replay: Replay, question: int, text: str, top: int = 3, terms: int = 10, weight: float = 0.2) -> Hits:
    """Sparse pseudo-relevance feedback: the best terms (documents x IDF) of the fused top added."""
    dense = replay.dense(question)
    c = replay.corpus
    counts: Counter[int] = Counter()
    for chunk, _ in fuse(dense, replay.sparse(text))[:top]:
        counts.update({term_id(t) for t in tokenize(contextualized(c.headings[chunk], c.texts[chunk]))})
    query = dict.fromkeys(query_vector(text).indices, 1.0)
    added = sorted(((n * replay.idf.get(t, 0.0), t) for t, n in counts.items() if t not in query), reverse=True)
    return fuse(dense, replay.sparse(text, {**query, **{t: weight for _, t in added[:terms]}}))


def idf_weighted_query(replay: Replay, question: int, text: str, power: float = 0.5) -> Hits:
    weights = {t: replay.idf.get(t, 0.0) ** power for t in query_vector(text).indices}
    return fuse(replay.dense(question), replay.sparse(text, weights))


IDEAS: dict[str, tuple[Idea, Bm25Parameters]] = {
    "default": (default, Bm25Parameters()),
    "document-fusion": (document_fusion, Bm25Parameters()),
    "heading-match": (heading_match, Bm25Parameters()),
    "rocchio": (rocchio, Bm25Parameters()),
    "rm3": (rm3, Bm25Parameters()),
    "idf-query": (idf_weighted_query, Bm25Parameters()),
    "bm25-k0.9-b0.4": (default, Bm25Parameters(k1=0.9, b=0.4)),
}


def evaluate(replay: Replay, idea: Idea) -> Scores:
    answerer = ExtractiveAnswerGenerator()
    rankings, cited = [], 0
    for number, (question, expected) in enumerate(replay.corpus.questions):
        hits = idea(replay, number, question)
        rankings.append([replay.corpus.files[i] for i, _ in hits[:10]])
        passages = replay.passages(hits[:5])
        citations = assemble_citations(answerer.compose(AnswerRequest(TENANT, question, passages)), passages)
        cited += bool(citations) and citations[0].filename == expected
    scores = score(rankings, [expected for _, expected in replay.corpus.questions])
    return replace(scores, cite1=100 * cited / len(replay.corpus.questions))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=[*sorted(CORPORA), "all"], default="all")
    parser.add_argument("--idea", choices=sorted(IDEAS), action="append", help="default: every idea")
    args = parser.parse_args()
    embedder = CachedEmbedder()
    print(f"{'corpus':10} {'idea':16} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'cite@1':>7}")
    for name in sorted(CORPORA) if args.corpus == "all" else [args.corpus]:
        corpus = await load_corpus(name, embedder)
        replays: dict[Bm25Parameters, Replay] = {}
        for label in args.idea or list(IDEAS):
            idea, bm25 = IDEAS[label]
            replay = replays.setdefault(bm25, Replay(corpus, bm25))
            s = evaluate(replay, idea)
            print(f"{name:10} {label:16} {s.hit1:6.1f} {s.hit5:6.1f} {s.mrr10:7.3f} {s.cite1:7.1f}", flush=True)
    embedder.save()


if __name__ == "__main__":
    asyncio.run(main())
