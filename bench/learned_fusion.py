"""A learned combination of the hybrid search's cheap signals, judged leave-one-corpus-out:

    python bench/learned_fusion.py [--features all|scores] [--lambdas 0.001,0.01,0.1,1,10]
                                   [--model linear|trees] [--exclude CORPUS ...] [--in-sample]

Each corpus of `bench/retrieval_replay.py` (its indexing, embedding cache and in-memory dense and
BM25 search; run the bench once first) gives, per question, the candidates the default fuses (the
dense and the sparse top 50) with a dozen features each, all computable in the retrieval service
from what the store returns and the query (`FEATURES`). A linear scorer over them is trained with
a listwise softmax loss (the right document's chunks against the other candidates), regularised
towards the platform's default (relative fusion: dense 1, sparse 0.5, the rest 0: an infinite
regularisation is the default exactly); the regularisation strength is chosen per fold by an
inner leave-one-corpus-out on the training corpora alone (best mean inner hit@1). Each corpus is
judged by a scorer trained on the others (`--exclude djangodoc` also keeps that set out of every
fold's training; `--model trees`: a small gradient-boosted tree model instead of the linear one),
against the default and the plain RRF baseline in the same run: hit@1, hit@5, MRR@10 and cite@1
(the extractive answerer over the new top 5), the margins, and how many first citations each
fold wins and loses. `--in-sample` then trains one scorer on every set and
judges it on the same sets (the most these features show; not generalisation). Results and the
adoption rule: docs/retrieval.md, "A learned combination of the signals". About 7 minutes of CPU.

The hypothesis (LETOR-style feature-based ranking): what no single hand-made signal did (each
gained on some sets and lost on others, docs/retrieval.md), a small learned weighting of several
may, if it holds on a corpus it never saw.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize  # bench only: installed with sentence-transformers
from sklearn.ensemble import HistGradientBoostingClassifier  # the same

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrieval_quality import CORPORA, CachedEmbedder, Scores, score
from bench.retrieval_replay import (
    PAIR_WEIGHT,
    SPARSE_WEIGHT,
    Hits,
    Idea,
    Replay,
    default,
    evaluate,
    evaluate_questions,
    format_row,
    load_corpus,
    rrf_baseline,
)
from ragplatform.domain.chunk_context import contextualized
from ragplatform.domain.fusion import normalised_scores
from ragplatform.domain.sparse_encoding import tokenize

FEATURES = (
    "dense",  # min-max normalised cosine over the dense list (0: not in it) - relative fusion's
    "sparse",  # min-max normalised BM25 over the sparse list (0: not in it) - relative fusion's
    "cosine",  # raw cosine (the dense list's last when not in it)
    "sparse/max",  # BM25 / the list's best (0: not in it)
    "1/dense rank",  # 0: not in it
    "1/sparse rank",
    "in both",
    "query terms in chunk",  # fraction of the query's distinct word terms the chunk's terms hold
    "query terms in heading",  # the same in the chunk's heading
    "doc best dense",  # the best `dense` among the candidates of the chunk's document
    "doc best sparse",
    "doc chunks",  # log(1 + the document's chunks among the candidates)
)
PRIOR = np.array([1.0, SPARSE_WEIGHT] + [0.0] * (len(FEATURES) - 2))  # the default's relative fusion
Mask = NDArray[np.bool_]  # the features a scorer may use
Scorer = Callable[[NDArray[np.float64]], NDArray[np.float64]]  # candidates' features -> scores
SCORE_FEATURES = [0, 1, 2, 3, 4, 5, 6]  # `--features scores`: what the store returns, no payload


@dataclass(frozen=True)
class Question:
    candidates: list[int]  # chunk numbers, dense list's order then the sparse list's newcomers
    features: NDArray[np.float64]  # len(candidates) x len(FEATURES)
    relevant: NDArray[np.bool_]  # the candidate is a chunk of the expected document


def candidate_features(
    dense: Hits,
    sparse: Hits,
    query_terms: set[str],
    documents: list[str],
    chunk_terms: list[set[str]],
    heading_terms: list[set[str]],
) -> tuple[list[int], NDArray[np.float64]]:
    """The candidates (dense then sparse order, as relative fusion keys them) and their features."""
    candidates = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in sparse]))
    d_norm, s_norm = normalised_scores(dense), normalised_scores(sparse)
    cosine = dict(dense)
    bm25 = dict(sparse)
    d_rank = {i: r for r, (i, _) in enumerate(dense, start=1)}
    s_rank = {i: r for r, (i, _) in enumerate(sparse, start=1)}
    lowest = dense[-1][1] if dense else 0.0
    best_bm25 = sparse[0][1] if sparse and sparse[0][1] > 0 else 1.0
    by_document: dict[str, list[int]] = defaultdict(list)
    for i in candidates:
        by_document[documents[i]].append(i)
    n_terms = max(len(query_terms), 1)
    rows = []
    for i in candidates:
        siblings = by_document[documents[i]]
        rows.append(
            [
                d_norm.get(i, 0.0),
                s_norm.get(i, 0.0),
                cosine.get(i, lowest),
                bm25.get(i, 0.0) / best_bm25,
                1.0 / d_rank[i] if i in d_rank else 0.0,
                1.0 / s_rank[i] if i in s_rank else 0.0,
                float(i in d_rank and i in s_rank),
                len(query_terms & chunk_terms[i]) / n_terms,
                len(query_terms & heading_terms[i]) / n_terms,
                max(d_norm.get(j, 0.0) for j in siblings),
                max(s_norm.get(j, 0.0) for j in siblings),
                math.log1p(len(siblings)),
            ]
        )
    return candidates, np.asarray(rows, dtype=np.float64)


class CorpusFeatures:
    """One corpus's replay and every question's candidates and features."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        c = replay.corpus
        chunk_terms = [set(tokenize(contextualized(h, t))) for h, t in zip(c.headings, c.texts, strict=True)]
        heading_terms = [set(tokenize(h)) for h in c.headings]
        self.questions: list[Question] = []
        for number, (text, expected) in enumerate(c.questions):
            dense, sparse = replay.dense(number), replay.sparse(text, pair_weight=PAIR_WEIGHT)
            candidates, x = candidate_features(dense, sparse, set(tokenize(text)), c.files, chunk_terms, heading_terms)
            relevant = np.array([c.files[i] == expected for i in candidates])
            self.questions.append(Question(candidates, x, relevant))

    def ranked(self, number: int, scorer: Scorer) -> Hits:
        q = self.questions[number]
        scores = scorer(q.features)
        order = np.argsort(-scores, kind="stable")  # ties keep the candidates' order, as fusion does
        return [(q.candidates[k], float(scores[k])) for k in order]

    def idea(self, scorer: Scorer) -> Idea:
        """The replay's idea that ranks a question's candidates by `scorer`."""

        def learned(_replay: Replay, number: int, _text: str) -> Hits:
            return self.ranked(number, scorer)

        return learned

    def quick(self, scorer: Scorer) -> Scores:
        """hit@1 / hit@5 / MRR@10 without the answerer (for the inner choice of the regulariser)."""
        c = self.replay.corpus
        rankings = [[c.files[i] for i, _ in self.ranked(n, scorer)[:10]] for n in range(len(self.questions))]
        return score(rankings, [e for _, e in c.questions])


@dataclass(frozen=True)
class Stack:
    """Training questions stacked: every candidate a row, each question a segment."""

    x: NDArray[np.float64]
    relevant: NDArray[np.bool_]
    starts: NDArray[np.intp]  # each segment's first row
    segment: NDArray[np.intp]  # each row's segment
    weight: NDArray[np.float64]  # each segment's weight in the loss


def stack(corpora: list[CorpusFeatures]) -> Stack:
    """The training questions that have a relevant candidate, each corpus weighing the same."""
    xs, rels, starts, weights, row = [], [], [], [], 0
    for c in corpora:
        kept = [q for q in c.questions if q.relevant.any()]
        for q in kept:
            xs.append(q.features)
            rels.append(q.relevant)
            starts.append(row)
            weights.append(1.0 / (len(kept) * len(corpora)))
            row += len(q.candidates)
    sizes = np.diff(np.append(starts, row))
    return Stack(
        np.vstack(xs),
        np.concatenate(rels),
        np.asarray(starts, dtype=np.intp),
        np.repeat(np.arange(len(starts)), sizes),
        np.asarray(weights),
    )


def _loss(params: NDArray[np.float64], data: Stack, lam: float, mask: Mask) -> tuple[float, NDArray[np.float64]]:
    """Listwise softmax loss (-log of the right document's share of the candidates), plus
    `lam` * ||w - PRIOR||^2; a free scale exp(params[0]) sharpens the softmax without changing the
    ranking, so only the direction of w pays the penalty."""
    scale, w = math.exp(params[0]), np.where(mask, params[1:], 0.0)
    raw = data.x @ w
    s = scale * raw
    s = s - np.maximum.reduceat(s, data.starts)[data.segment]
    e = np.exp(s)
    z = np.add.reduceat(e, data.starts)
    r = np.add.reduceat(np.where(data.relevant, e, 0.0), data.starts)
    total = float(data.weight @ (np.log(z) - np.log(r)))
    g = data.weight[data.segment] * (e / z[data.segment] - np.where(data.relevant, e / r[data.segment], 0.0))
    grad = np.zeros_like(params)
    grad[1:] = scale * (data.x.T @ g)
    grad[0] = scale * float(g @ raw)
    diff = w - PRIOR * mask
    total += lam * float(diff @ diff)
    grad[1:] = (grad[1:] + 2 * lam * diff) * mask
    return total, grad


def train(corpora: list[CorpusFeatures], lam: float, mask: Mask) -> NDArray[np.float64]:
    start = np.concatenate([[math.log(5.0)], PRIOR * mask])
    result = minimize(
        _loss, start, args=(stack(corpora), lam, mask), jac=True, method="L-BFGS-B", options={"maxiter": 1000}
    )
    weights: NDArray[np.float64] = np.where(mask, result.x[1:], 0.0)
    return weights


def linear(weights: NDArray[np.float64]) -> Scorer:
    """The linear scorer with `weights`."""

    def scores(features: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = features @ weights
        return result

    return scores


def trees(corpora: list[CorpusFeatures], mask: Mask) -> Scorer:
    """A small gradient-boosted tree model (`--model trees`), pointwise (is the candidate a chunk
    of the right document?), each training corpus weighing the same; its settings fixed before
    any run (depth 3, 100 rounds, rate 0.1, L2 1), nothing chosen on the sets."""
    data = stack(corpora)
    model = HistGradientBoostingClassifier(
        max_depth=3, max_iter=100, learning_rate=0.1, l2_regularization=1.0, early_stopping=False, random_state=0
    )
    model.fit(data.x[:, mask], data.relevant, sample_weight=data.weight[data.segment])

    def scores(features: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = model.predict_proba(features[:, mask])[:, 1]
        return result

    return scores


def weights_line(weights: NDArray[np.float64], used: list[str]) -> str:
    """The weights of the features `used`, the largest scaled to 1 (the ranking depends on their
    direction only)."""
    shown = weights / np.abs(weights).max()
    return "#   weights (largest 1): " + ", ".join(
        f"{f} {v:+.3f}" for f, v in zip(FEATURES, shown, strict=True) if f in used
    )


def choose_lambda(corpora: list[CorpusFeatures], lambdas: list[float], mask: Mask) -> float:
    """The regulariser with the best mean hit@1 over an inner leave-one-corpus-out (ties: the
    stronger one)."""
    best, best_lam = -1.0, lambdas[-1]
    for lam in sorted(lambdas, reverse=True):
        hits = []
        for held in range(len(corpora)):
            weights = train([c for k, c in enumerate(corpora) if k != held], lam, mask)
            hits.append(corpora[held].quick(linear(weights)).hit1)
        mean = sum(hits) / len(hits)
        print(f"#   inner λ={lam:g}: mean hit@1 {mean:.2f}", file=sys.stderr, flush=True)
        if mean > best + 1e-9:
            best, best_lam = mean, lam
    return best_lam


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", choices=["all", "scores"], default="all")
    parser.add_argument("--model", choices=["linear", "trees"], default="linear")
    parser.add_argument("--lambdas", default="0.001,0.01,0.1,1,10")
    parser.add_argument("--in-sample", action="store_true", help="also train on every set and judge in sample")
    parser.add_argument("--exclude", action="append", default=[], help="a corpus never trained on (still judged)")
    args = parser.parse_args()
    lambdas = [float(v) for v in args.lambdas.split(",")]
    mask = np.zeros(len(FEATURES), dtype=bool)
    mask[SCORE_FEATURES if args.features == "scores" else list(range(len(FEATURES)))] = True
    embedder = CachedEmbedder()
    names = sorted(CORPORA)
    corpora: dict[str, CorpusFeatures] = {}
    baselines: dict[str, Scores] = {}
    for name in names:
        baselines[name] = evaluate(Replay(await load_corpus(name, embedder, True)), rrf_baseline)
        corpora[name] = CorpusFeatures(Replay(await load_corpus(name, embedder)))
        print(f"# {name}: features ready", file=sys.stderr, flush=True)
    used = [f for f, m in zip(FEATURES, mask, strict=True) if m]
    print(f"# features: {used}; excluded from training: {args.exclude}")
    print(f"{'corpus':10} {'idea':24} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'cite@1':>7}  margin hit@1 / cite@1")
    gains = []
    for held in names:
        training = [corpora[n] for n in names if n != held and n not in args.exclude]
        features = corpora[held]
        if args.model == "trees":
            lam, weights, scorer = math.nan, None, trees(training, mask)
        else:
            lam = choose_lambda(training, lambdas, mask)
            weights = train(training, lam, mask)
            scorer = linear(weights)
        learned, learned_cited = evaluate_questions(features.replay, features.idea(scorer))
        base, base_cited = evaluate_questions(features.replay, default)
        prior = evaluate(features.replay, features.idea(linear(PRIOR)))
        assert prior == base, f"the prior's ranking is not the default's on {held}: {prior} vs {base}"
        print(format_row(held, "baseline (plain, RRF)", baselines[held]))
        print(format_row(held, "default", base, baselines[held]))
        label = "learned (trees)" if weights is None else f"learned (λ={lam:g})"
        print(format_row(held, label, learned, baselines[held]), flush=True)
        if weights is not None:
            print(weights_line(weights, used))
        won = sum(n and not o for n, o in zip(learned_cited, base_cited, strict=True))
        lost = sum(o and not n for n, o in zip(learned_cited, base_cited, strict=True))
        gains.append((held, learned.cite1 - base.cite1, won, lost))
    print(
        "# cite@1 learned - default per fold (questions won / lost): "
        + ", ".join(f"{n} {g:+.1f} (+{w} / -{lo})" for n, g, w, lo in gains)
    )
    print(f"# all folds: +{sum(g[2] for g in gains)} / -{sum(g[3] for g in gains)} questions")
    print(f"# mean over folds: {sum(g[1] for g in gains) / len(gains):+.2f} points of cite@1")
    if args.in_sample:
        in_sample(corpora, [n for n in names if n not in args.exclude], lambdas, mask)


def in_sample(corpora: dict[str, CorpusFeatures], trained: list[str], lambdas: list[float], mask: Mask) -> None:
    """One scorer trained on every set (λ by leave-one-corpus-out over them all) and judged on the
    same sets: not a measure of generalisation, but the most a weighting of these features shows
    (the weights the platform would ship); and how often the right document is a candidate at all
    (the ceiling of any re-ordering)."""
    training = [corpora[n] for n in trained]
    lam = choose_lambda(training, lambdas, mask)
    weights = train(training, lam, mask)
    print(f"# trained on {trained} (λ={lam:g}), judged in sample:")
    print(weights_line(weights, list(FEATURES)))
    for name, features in corpora.items():
        fitted, base = evaluate(features.replay, features.idea(linear(weights))), evaluate(features.replay, default)
        ceiling = 100 * sum(q.relevant.any() for q in features.questions) / len(features.questions)
        print(
            format_row(name, "in sample", fitted) + f"  cite@1 {fitted.cite1 - base.cite1:+5.1f} vs default;"
            f" right document among the candidates {ceiling:.1f} %"
        )


if __name__ == "__main__":
    asyncio.run(main())
