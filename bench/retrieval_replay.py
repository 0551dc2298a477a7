"""Offline replay of `bench/retrieval_quality.py`'s default pipeline, to judge a general retrieval
change on every corpus in seconds before building it into the stores:

    python bench/retrieval_replay.py [--corpus all|apachedoc|djangodoc|manpages|pgdoc|pydoc|sqlitedoc]
                                     [--idea NAME ...] [--no-baseline]
                                     [--chunk-tokens N] [--overlap-tokens N]

Each corpus is indexed as the ingestion worker indexes it (the bench's own `worker_points`, with
its embedding cache: run the bench once first), then searched in memory: exact dense cosine
(the embedded store searches collections this small exactly), Okapi BM25 over the same sparse
vectors with Qdrant's IDF (`ln(1 + (N - n + 0.5) / (n + 0.5))`), the platform's relative score
fusion (`domain.fusion`) of the two top-50 lists, and the first citation of the extractive
answerer over the top 5, as the bench measures it. The `default` idea (the retrieval service's
settings, term pairs included) reproduces the bench's DEFAULT row exactly on all six corpora
(checked 2026-11-30, djangodoc with the sectioned-heading default); `words-only` is the default
before term pairs, against which the older ideas were measured (docs/retrieval.md, "A fifth
corpus", "Term pairs", "Tried for the margin and not taken"). Unless `--no-baseline`, the plain
RRF baseline is replayed too (chunk text alone, dense + BM25 fused by Qdrant's RRF 1:1) and each
idea's margin over it printed. `--chunk-tokens` / `--overlap-tokens` cut both sides' chunks
differently (new chunks are embedded and cached on the first run). Prints hit@1, hit@5, MRR@10
and cite@1 per corpus and idea.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.retrieval_quality import (
    CHUNKING,
    CORPORA,
    TENANT,
    CachedEmbedder,
    Scores,
    load_questions,
    plain_points,
    score,
    worker_points,
)
from ragplatform.backends.llms.base import AnswerRequest
from ragplatform.backends.llms.extractive import ExtractiveAnswerGenerator
from ragplatform.core.settings import RetrievalSettings, load_settings
from ragplatform.domain.chunk_context import contextualized
from ragplatform.domain.citations import assemble_citations
from ragplatform.domain.fusion import DEFAULT_SPARSE_WEIGHT, normalised_scores, relative_score_fusion
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.sparse_encoding import (
    Bm25Parameters,
    document_vector,
    query_vector,
    term_id,
    term_pairs,
    tokenize,
)
from ragplatform.domain.text_matching import split_sentences
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.retrieval.app import retrieval_policy

CANDIDATES = 50  # RAG_FUSION_CANDIDATES
SPARSE_WEIGHT = DEFAULT_SPARSE_WEIGHT["relative"]
PAIR_WEIGHT = retrieval_policy(load_settings(RetrievalSettings)).sparse_pair_weight
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


async def load_corpus(
    name: str, embedder: CachedEmbedder, plain: bool = False, chunking: ChunkingPolicy = CHUNKING
) -> Corpus:
    """The corpus as the ingestion worker indexes it, or (`plain`) as the baseline indexes it:
    the chunk text alone, no heading, no folding (the bench's "plain" rows)."""
    documents = CORPORA[name][0]()
    questions, _ = load_questions(CORPORA[name][1], set(documents))
    points = await (plain_points if plain else worker_points)(documents, embedder, chunking)
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


def _idf(postings: dict[int, list[tuple[int, float]]], n: int) -> dict[int, float]:
    """Qdrant's IDF modifier: `ln(1 + (N - n + 0.5) / (n + 0.5))`."""
    return {term: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for term, p in postings.items()}


def pair_features(terms: list[str], kind: str) -> list[str]:
    """Sequential-dependence features of a term stream (stopwords already dropped, so a pair may
    span them): `ordered`, each term with the next (the platform's `term_pairs`); `unordered`, the
    same pair in either order; `window3`, each term with each of the next two, unordered."""
    if kind == "ordered":
        return term_pairs(terms)
    span = 3 if kind == "window3" else 2
    pairs = []
    for i, first in enumerate(terms):
        for second in terms[i + 1 : i + span]:
            if second != first:
                pairs.append(" ".join(sorted((first, second))))
    return pairs


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
        self.idf = _idf(self.postings, len(corpus.texts))
        self.bm25 = bm25
        self._pairs: dict[str, tuple[dict[int, list[tuple[int, float]]], dict[int, float]]] = {}
        self.windows: dict[int, NDArray[np.float64]] = {}  # chunk -> unit rows of its windows' vectors
        # Other dense representations of the chunks (unit rows, chunk order), by name.
        self.representations: dict[str, NDArray[np.float64]] = {}

    def pair_index(self, kind: str) -> tuple[dict[int, list[tuple[int, float]]], dict[int, float]]:
        """Postings and IDF of every chunk's term pairs of `kind` (see `term_pairs`), with BM25's
        saturation over the chunk's unigram length (built on first use)."""
        if kind not in self._pairs:
            postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
            k1, b, avg = self.bm25.k1, self.bm25.b, self.bm25.avg_terms
            for chunk, (heading, text) in enumerate(zip(self.corpus.headings, self.corpus.texts, strict=True)):
                terms = tokenize(contextualized(heading, text))
                norm = k1 * (1.0 - b + b * len(terms) / avg)
                for pair, tf in Counter(pair_features(terms, kind)).items():
                    postings[term_id(pair)].append((chunk, tf * (k1 + 1.0) / (tf + norm)))
            self._pairs[kind] = (postings, _idf(postings, len(self.corpus.texts)))
        return self._pairs[kind]

    def pair_scores(self, question: str, kind: str) -> dict[int, float]:
        """BM25 over the query's term pairs of `kind`, every chunk that has one."""
        postings, idf = self.pair_index(kind)
        totals: dict[int, float] = defaultdict(float)
        for pair in set(pair_features(tokenize(question), kind)):
            term = term_id(pair)
            for chunk, weight in postings.get(term, ()):
                totals[chunk] += idf[term] * weight
        return totals

    def dense(self, question: int, vector: NDArray[np.float64] | None = None) -> Hits:
        query = self.corpus.query_vectors[question] if vector is None else vector
        scores = self.corpus.vectors @ query
        best = np.argsort(-scores, kind="stable")[:CANDIDATES]
        return [(int(i), float(scores[i])) for i in best]

    def sparse(
        self,
        question: str,
        weights: dict[int, float] | None = None,
        extra: dict[int, float] | None = None,
        pair_weight: float = 0.0,
    ) -> Hits:
        """BM25's top candidates for the query's terms (`weights`, or the platform's query vector
        with `pair_weight`); `extra` scores (chunk -> score) are added before ranking."""
        if weights is None:
            vector = query_vector(question, pair_weight)
            weights = dict(zip(vector.indices, vector.values, strict=True))
        terms = weights
        totals: dict[int, float] = defaultdict(float)
        for term, query_weight in terms.items():
            for chunk, weight in self.postings.get(term, ()):
                totals[chunk] += query_weight * self.idf[term] * weight
        for chunk, value in (extra or {}).items():
            totals[chunk] += value
        return sorted(totals.items(), key=lambda hit: -hit[1])[:CANDIDATES]

    def passages(self, hits: Hits) -> list[ScoredPassage]:
        c = self.corpus
        return [ScoredPassage(str(i), c.files[i], c.files[i], c.indexes[i], c.texts[i], s) for i, s in hits]


def fuse(dense: Hits, sparse: Hits) -> Hits:
    return relative_score_fusion(dense, sparse, 1.0, SPARSE_WEIGHT, 2 * CANDIDATES)


Idea = Callable[[Replay, int, str], Hits]


def words_only(replay: Replay, question: int, text: str) -> Hits:
    """The default before term pairs (RAG_SPARSE_PAIR_WEIGHT=0): the ideas above it were measured
    against this one."""
    return fuse(replay.dense(question), replay.sparse(text))


def default(replay: Replay, question: int, text: str) -> Hits:
    """The retrieval service's default: words and adjacent-word pairs (RAG_SPARSE_PAIR_WEIGHT)."""
    return fuse(replay.dense(question), replay.sparse(text, pair_weight=PAIR_WEIGHT))


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


def rrf_baseline(replay: Replay, question: int, text: str, k: int = 60) -> Hits:
    """The bench's baseline on a plain corpus: dense and BM25 top-50 fused by Qdrant's RRF, 1:1
    (`1 / (rank + k - 1)`, rank from 1; ties keep the dense list's order)."""
    fused: dict[int, float] = defaultdict(float)
    for hits in (replay.dense(question), replay.sparse(text)):
        for rank, (chunk, _) in enumerate(hits, start=1):
            fused[chunk] += 1.0 / (rank + k - 1)
    return sorted(fused.items(), key=lambda hit: -hit[1])


def pairs_in_sparse(replay: Replay, question: int, text: str, kind: str = "ordered", weight: float = 1.0) -> Hits:
    """Term pairs as more terms of the same BM25 vector, the query's pairs weighted `weight`
    (`ordered`: the platform's own encoding, RAG_SPARSE_PAIR_WEIGHT=`weight`)."""
    if kind == "ordered":
        return fuse(replay.dense(question), replay.sparse(text, pair_weight=weight))
    extra = {chunk: weight * value for chunk, value in replay.pair_scores(text, kind).items()}
    return fuse(replay.dense(question), replay.sparse(text, extra=extra))


def pairs_as_list(replay: Replay, question: int, text: str, kind: str = "ordered", weight: float = 0.2) -> Hits:
    """Term pairs as a third list (its own BM25 top 50), fused at `weight` with the other two."""
    dense, sparse = replay.dense(question), replay.sparse(text)
    pairs = sorted(replay.pair_scores(text, kind).items(), key=lambda hit: -hit[1])[:CANDIDATES]
    d, s, p = normalised_scores(dense), normalised_scores(sparse), normalised_scores(pairs)
    candidates = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in sparse] + [i for i, _ in pairs]))
    fused = [(i, d.get(i, 0.0) + SPARSE_WEIGHT * s.get(i, 0.0) + weight * p.get(i, 0.0)) for i in candidates]
    return sorted(fused, key=lambda hit: -hit[1])


def bm25_plus(replay: Replay, question: int, text: str, delta: float = 1.0) -> Hits:
    """BM25+ (Lv and Zhai, "Lower-Bounding Term Frequency Normalization", CIKM 2011): every
    matched query term adds `delta` x its IDF on top of BM25's saturated tf, so that a chunk
    matching one more query term beats one repeating a term it already matched."""
    extra: dict[int, float] = defaultdict(float)
    for term in query_vector(text).indices:
        for chunk, _ in replay.postings.get(term, ()):
            extra[chunk] += delta * replay.idf[term]
    return fuse(replay.dense(question), replay.sparse(text, extra=extra))


def coordination(replay: Replay, question: int, text: str, power: float = 1.0) -> Hits:
    """BM25 times (matched query terms / query terms) ** `power`: Lucene's classic coord factor."""
    terms = query_vector(text).indices
    matched: Counter[int] = Counter()
    for term in terms:
        matched.update(chunk for chunk, _ in replay.postings.get(term, ()))
    scored = ((c, v * (matched[c] / len(terms)) ** power) for c, v in _all_sparse(replay, text).items())
    return fuse(replay.dense(question), sorted(scored, key=lambda hit: -hit[1])[:CANDIDATES])


def _all_sparse(replay: Replay, text: str) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for term in query_vector(text).indices:
        for chunk, weight in replay.postings.get(term, ()):
            totals[chunk] += replay.idf[term] * weight
    return totals


def chunk_windows(text: str, span: int) -> list[str]:
    """Runs of `span` consecutive sentences of a chunk, stride 1 (the chunk whole if shorter)."""
    sentences = split_sentences(text)
    if len(sentences) <= span:
        return [text]
    return [" ".join(sentences[i : i + span]) for i in range(len(sentences) - span + 1)]


WINDOW_SPAN = 2
WINDOW_DEPTH = 5  # the fused candidates re-scored


async def embed_windows(replay: Replay, embedder: CachedEmbedder, first_stages: tuple[Idea, ...]) -> None:
    """Embed (cached) the windows of every chunk one of `first_stages` puts in some question's top
    `WINDOW_DEPTH`: the only chunks the window ideas look at."""
    wanted = sorted(
        {
            i
            for n, (q, _) in enumerate(replay.corpus.questions)
            for first in first_stages
            for i, _ in first(replay, n, q)[:WINDOW_DEPTH]
            if i not in replay.windows
        }
    )
    print(f"# {len(wanted)} chunks' windows to embed", file=sys.stderr, flush=True)
    windows = {chunk: chunk_windows(replay.corpus.texts[chunk], WINDOW_SPAN) for chunk in wanted}
    vectors = await embedder.embed_documents([w for chunk in wanted for w in windows[chunk]])
    for chunk in wanted:
        replay.windows[chunk] = _unit_rows(vectors[: len(windows[chunk])])
        vectors = vectors[len(windows[chunk]) :]
    embedder.save()


def window_rescore(replay: Replay, question: int, text: str, weight: float = 0.5, first: Idea = words_only) -> Hits:
    """The top `WINDOW_DEPTH` of `first` re-scored: its score + `weight` x the best query-window
    cosine (min-max normalised over those candidates): a MaxSim over sentence windows."""
    fused = first(replay, question, text)
    head, tail = fused[:WINDOW_DEPTH], fused[WINDOW_DEPTH:]
    query = replay.corpus.query_vectors[question]
    best = normalised_scores([(i, float(np.max(replay.windows[i] @ query))) for i, _ in head])
    return sorted(((i, s + weight * best[i]) for i, s in head), key=lambda hit: -hit[1]) + tail


async def embed_representations(replay: Replay, embedder: CachedEmbedder) -> None:
    """The chunks' vectors before the heading and centroid fold (`unfolded`: the embedding of
    heading + chunk, which the worker computes anyway) and of the chunk text alone (`plain`, the
    baseline's): both in the embedding cache after a bench run."""
    c = replay.corpus
    texts = {
        "unfolded": [contextualized(h, t) for h, t in zip(c.headings, c.texts, strict=True)],
        "plain": list(c.texts),
    }
    for name, batch in texts.items():
        if name not in replay.representations:
            replay.representations[name] = _unit_rows(await embedder.embed_documents(batch))


def second_dense_list(replay: Replay, question: int, text: str, name: str = "unfolded", weight: float = 0.5) -> Hits:
    """A third list: the dense top 50 of another representation of the chunks, fused at `weight`
    with the default's two (relative fusion)."""
    dense, sparse = replay.dense(question), replay.sparse(text, pair_weight=PAIR_WEIGHT)
    scores = replay.representations[name] @ replay.corpus.query_vectors[question]
    other = [(int(i), float(scores[i])) for i in np.argsort(-scores, kind="stable")[:CANDIDATES]]
    d, s, o = normalised_scores(dense), normalised_scores(sparse), normalised_scores(other)
    candidates = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in sparse] + [i for i, _ in other]))
    fused = [(i, d.get(i, 0.0) + SPARSE_WEIGHT * s.get(i, 0.0) + weight * o.get(i, 0.0)) for i in candidates]
    return sorted(fused, key=lambda hit: -hit[1])


IDEAS: dict[str, tuple[Idea, Bm25Parameters]] = {
    "default": (default, Bm25Parameters()),
    "words-only": (words_only, Bm25Parameters()),
    "document-fusion": (document_fusion, Bm25Parameters()),
    "heading-match": (heading_match, Bm25Parameters()),
    "rocchio": (rocchio, Bm25Parameters()),
    "rm3": (rm3, Bm25Parameters()),
    "idf-query": (idf_weighted_query, Bm25Parameters()),
    "bm25-k0.9-b0.4": (default, Bm25Parameters(k1=0.9, b=0.4)),
    **{
        f"pairs-{kind}-{w}": (partial(pairs_in_sparse, kind=kind, weight=w), Bm25Parameters())
        for kind in ("ordered", "unordered", "window3")
        for w in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    },
    **{
        f"pairlist-{kind}-{w}": (partial(pairs_as_list, kind=kind, weight=w), Bm25Parameters())
        for kind in ("ordered", "unordered")
        for w in (0.1, 0.2, 0.3)
    },
    **{
        f"second-dense-{name}-{w}": (partial(second_dense_list, name=name, weight=w), Bm25Parameters())
        for name in ("unfolded", "plain")
        for w in (0.25, 0.5, 1.0)
    },
    **{f"bm25plus-{d}": (partial(bm25_plus, delta=d), Bm25Parameters()) for d in (0.25, 0.5, 1.0)},
    **{f"coord-{p}": (partial(coordination, power=p), Bm25Parameters()) for p in (0.5, 1.0, 2.0)},
    **{f"windows-{w}": (partial(window_rescore, weight=w), Bm25Parameters()) for w in (0.1, 0.25, 0.5, 1.0)},
    **{f"pairs+windows-{w}": (partial(window_rescore, weight=w, first=default), Bm25Parameters()) for w in (0.25, 0.5)},
}


def evaluate(replay: Replay, idea: Idea) -> Scores:
    return evaluate_questions(replay, idea)[0]


def evaluate_questions(replay: Replay, idea: Idea) -> tuple[Scores, list[bool]]:
    """The idea's scores on the corpus, and per question whether its first citation is right."""
    answerer = ExtractiveAnswerGenerator()
    rankings, cited = [], []
    for number, (question, expected) in enumerate(replay.corpus.questions):
        hits = idea(replay, number, question)
        rankings.append([replay.corpus.files[i] for i, _ in hits[:10]])
        passages = replay.passages(hits[:5])
        citations = assemble_citations(answerer.compose(AnswerRequest(TENANT, question, passages)), passages)
        cited.append(bool(citations) and citations[0].filename == expected)
    scores = score(rankings, [expected for _, expected in replay.corpus.questions])
    return replace(scores, cite1=100 * sum(cited) / len(replay.corpus.questions)), cited


def format_row(corpus: str, label: str, s: Scores, base: Scores | None = None) -> str:
    row = f"{corpus:10} {label:24} {s.hit1:6.1f} {s.hit5:6.1f} {s.mrr10:7.3f} {s.cite1:7.1f}"
    return row if base is None else f"{row}  {s.hit1 - base.hit1:+5.1f} / {s.cite1 - base.cite1:+5.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=[*sorted(CORPORA), "all"], default="all")
    parser.add_argument("--idea", choices=sorted(IDEAS), action="append", help="default: every idea")
    parser.add_argument("--chunk-tokens", type=int, default=CHUNKING.chunk_tokens, help="RAG_CHUNK_TOKENS (both sides)")
    parser.add_argument("--overlap-tokens", type=int, default=CHUNKING.overlap_tokens, help="RAG_CHUNK_OVERLAP_TOKENS")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also replay the plain RRF baseline (embeds the plain chunks the first time) and print margins",
    )
    args = parser.parse_args()
    chunking = replace(CHUNKING, chunk_tokens=args.chunk_tokens, overlap_tokens=args.overlap_tokens)
    embedder = CachedEmbedder()
    print(f"{'corpus':10} {'idea':24} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'cite@1':>7}  margin hit@1 / cite@1")
    for name in sorted(CORPORA) if args.corpus == "all" else [args.corpus]:
        base = None
        if args.baseline:
            base = evaluate(Replay(await load_corpus(name, embedder, True, chunking)), rrf_baseline)
            print(format_row(name, "baseline (plain, RRF)", base))
        corpus = await load_corpus(name, embedder, False, chunking)
        replays: dict[Bm25Parameters, Replay] = {}
        for label in args.idea or list(IDEAS):
            idea, bm25 = IDEAS[label]
            replay = replays.setdefault(bm25, Replay(corpus, bm25))
            if label.startswith("second-dense"):
                await embed_representations(replay, embedder)
            if "windows" in label:
                await embed_windows(replay, embedder, (words_only, default))
            s = evaluate(replay, idea)
            print(format_row(name, label, s, base), flush=True)
        embedder.save()


if __name__ == "__main__":
    asyncio.run(main())
