"""Retrieval quality on a corpus the project did not write: dense, sparse, the plain hybrid (RRF)
baseline and the platform's default pipeline, side by side in one run.

    python bench/retrieval_quality.py [--corpus manpages|pydoc|pgdoc|sqlitedoc|apachedoc|djangodoc|all]
                                      [--questions FILE]
                                      [--embedder minilm|e5-small]
                                      [--rerank remote --rerank-url http://host:port]
                                      [--rerank llm --rerank-url http://host:port/v1 --rerank-model M]

Corpora (each with its own questions, task-style, written before any tuning):
* manpages (default): manual pages of installed packages rendered with `man`
  (bench/manpage_corpus.py), questions in bench/retrieval_questions.tsv;
* pydoc: pydoc text of 76 standard-library modules (bench/pydoc_corpus.py), questions in
  bench/retrieval_questions_pydoc.tsv -- a held-out check written by someone who did not build
  or tune the pipeline;
* pgdoc: prose documentation, 233 pages of the PostgreSQL 15 manual (DocBook HTML from Debian's
  postgresql-doc-15, ingested as HTML; bench/pgdoc_corpus.py), questions in
  bench/retrieval_questions_pgdoc.tsv, written and committed before any search ran on it;
* sqlitedoc: prose documentation the pipeline was never tuned on, 174 pages of the SQLite
  documentation (HTML from Debian's sqlite3-doc, ingested as HTML; bench/sqlitedoc_corpus.py),
  questions in bench/retrieval_questions_sqlitedoc.tsv, committed before any search ran on it;
* apachedoc: a fifth set, held out from every choice made on the four above: 205 English pages of
  the Apache HTTP Server 2.4 manual (HTML from Debian's apache2-doc, ingested as HTML;
  bench/apachedoc_corpus.py), questions in bench/retrieval_questions_apachedoc.tsv, committed
  before any search ran on it;
* djangodoc: a sixth set, held out from every choice made on the five above and of another kind
  (a web framework's developer documentation): 218 pages of the Django 3.2 documentation
  (tutorials, topic guides, how-tos, API reference; HTML from Debian's python-django-doc,
  ingested as HTML; bench/djangodoc_corpus.py), questions in
  bench/retrieval_questions_djangodoc.tsv, committed before any search ran on it.

Chunks are cut
exactly as the ingestion worker cuts them (parse -> chunk at 256 MiniLM tokens, 32 overlap), and
every row searches through the real `RetrievalService` and embedded qdrant-edge store:

* "plain" rows index chunk text alone, as the platform did before (dense MiniLM vectors of the
  chunk, BM25 vectors of the chunk);
* "contextual" rows index what the ingestion worker indexes now (its own `ingest_document`): the
  document heading prepended to the text embedded and to the sparse vector's text, and the
  heading's embedding and the document's centroid (mean chunk embedding) folded into each chunk
  vector (`domain.chunk_context`); `--heading-weight` / `--document-weight` override the
  worker's weights for a grid.

A hit is by document: hit@1 = the first passage is from the expected page, hit@5 = one of the
first five is, MRR@10 = mean of 1/rank of the first passage from it; cite@1 = the first citation
of an embedded Ask's answer (the extractive answerer over the top 5 passages) is from it.
`--embedder e5-small` makes every row with that dense model (same chunks) and adds the plain RRF
baseline with MiniLM dense vectors. Embeddings are cached per model in bench/results/
(git-ignored): the first run embeds ~2,500 texts per corpus (tens of minutes on two busy cores;
e5-small about 4x MiniLM's CPU), later runs take seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.apachedoc_corpus import apachedoc_corpus
from bench.djangodoc_corpus import djangodoc_corpus
from bench.manpage_corpus import RESULTS, manpage_corpus
from bench.pgdoc_corpus import pgdoc_corpus
from bench.pydoc_corpus import pydoc_corpus
from bench.sqlitedoc_corpus import sqlitedoc_corpus
from ragplatform.backends.embedders.base import Embedder
from ragplatform.backends.embedders.e5_small import E5SmallEmbedder
from ragplatform.backends.embedders.minilm import MiniLMEmbedder
from ragplatform.backends.embedders.minilm_onnx import QUANTIZE_RECIPE, QueryPrecision
from ragplatform.backends.llms.base import AnswerRequest
from ragplatform.backends.llms.extractive import ExtractiveAnswerGenerator
from ragplatform.backends.rerankers.base import Reranker
from ragplatform.backends.rerankers.factory import make_reranker
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import RetrievalSettings, load_settings
from ragplatform.domain.citations import assemble_citations
from ragplatform.domain.models import ChunkPoint, Document, HybridFusion, ScoredPassage
from ragplatform.domain.retrieval_metrics import Expectation, RankedResult, first_relevant_rank, score_ranks
from ragplatform.ingestion.pipeline import ChunkingPolicy, ingest_document, split_document
from ragplatform.retrieval.app import retrieval_policy
from ragplatform.retrieval.service import RetrievalMode, RetrievalPolicy, RetrievalService

BENCH = Path(__file__).resolve().parent
CORPORA = {
    "manpages": (manpage_corpus, BENCH / "retrieval_questions.tsv"),
    "pydoc": (pydoc_corpus, BENCH / "retrieval_questions_pydoc.tsv"),
    "pgdoc": (pgdoc_corpus, BENCH / "retrieval_questions_pgdoc.tsv"),
    "sqlitedoc": (sqlitedoc_corpus, BENCH / "retrieval_questions_sqlitedoc.tsv"),
    "apachedoc": (apachedoc_corpus, BENCH / "retrieval_questions_apachedoc.tsv"),
    "djangodoc": (djangodoc_corpus, BENCH / "retrieval_questions_djangodoc.tsv"),
}
TENANT = "bench"
ASK_TOP_K = 5  # the gateway's RAG_DEFAULT_TOP_K
CHUNKING = ChunkingPolicy(chunk_tokens=256, overlap_tokens=32, embed_batch_size=64)
_SAVE_EVERY = 512  # new vectors between two writes of the embedding cache


class CachedEmbedder:
    """A local model (`--embedder`) with an on-disk cache of every vector it made, keyed by the
    text's SHA-1 (queries apart: e5 embeds them with another prefix). Chunks are cut by MiniLM's
    tokenizer whatever the model, so every embedder is compared on the same chunks."""

    def __init__(
        self, key: str = "minilm", cache: Path | None = None, query_precision: QueryPrecision = "fp32"
    ) -> None:
        self._chunker = MiniLMEmbedder(cache_dir=RESULTS / "model-cache", query_precision=query_precision)
        self._model: Embedder = self._chunker if key == "minilm" else E5SmallEmbedder()
        # MiniLM's queries in int8 are other vectors than fp32's: cached under their own keys.
        self._query_role = "query:" if query_precision == "fp32" or key != "minilm" else f"query-{QUANTIZE_RECIPE}:"
        self._file = cache or RESULTS / f"embeddings-{key}.npz"
        self._cache: dict[str, np.ndarray] = dict(np.load(self._file)) if self._file.exists() else {}
        self._unsaved = 0
        self.name = f"{self._model.name} (cached)"
        self.dimension = self._model.dimension

    def count_tokens(self, text: str) -> int:
        return self._chunker.count_tokens(text)

    async def _cached(self, texts: list[str], role: str) -> list[list[float]]:
        keys = [role + hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
        embed = self._model.embed_documents if not role else self._embed_queries
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            vectors = await embed([t for _, t in batch])
            self._cache.update({k: np.asarray(v, dtype=np.float32) for (k, _), v in zip(batch, vectors, strict=True)})
            self._unsaved += len(batch)
            print(f"# embedded {start + len(batch)}/{len(missing)} new texts", file=sys.stderr, flush=True)
        if self._unsaved >= _SAVE_EVERY:
            self.save()
        return [self._cache[k].tolist() for k in keys]

    def save(self) -> None:
        """Write the cache if it has new vectors: aside, then renamed, so that a reader (another
        run, a replay) never loads half a file. Called every `_SAVE_EVERY` new vectors and after
        each corpus (the ingestion path embeds a document at a time: saving the whole cache after
        each one cost more than the embedding)."""
        if self._unsaved:
            partial = self._file.with_name(f"{self._file.stem}.partial.npz")
            np.savez(partial, **self._cache)  # type: ignore[arg-type]
            partial.replace(self._file)
            self._unsaved = 0

    async def _embed_queries(self, texts: list[str]) -> list[list[float]]:
        return [await self._model.embed_query(t) for t in texts]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._cached(texts, "")

    async def embed_query(self, text: str) -> list[float]:
        return (await self._cached([text], self._query_role))[0]

    async def embed_queries(self, texts: list[str]) -> None:
        """Embed and cache the questions not cached yet, in batches (one at a time they cost a
        model call each)."""
        await self._cached(texts, self._query_role)

    async def close(self) -> None:
        self.save()
        await self._model.close()


@dataclass(frozen=True)
class Scores:
    hit1: float
    hit5: float
    mrr10: float
    cite1: float = 0.0


def score(rankings: list[list[str]], expected: list[str]) -> Scores:
    """Document-level hit@1, hit@5 and MRR@10 of passage rankings (file names, best first), with
    the metrics `ragplatform eval` uses (`domain.retrieval_metrics`)."""
    ranks = [
        first_relevant_rank([RankedResult(f, f) for f in ranked], Expectation("", want))
        for ranked, want in zip(rankings, expected, strict=True)
    ]
    scores = score_ranks(ranks)
    return Scores(100 * scores.hit_at_1, 100 * scores.hit_at_5, scores.mrr_at_10)


async def evaluate(service: RetrievalService, questions: list[tuple[str, str]]) -> Scores:
    expected = [d for _, d in questions]
    cited = await first_citations(service, questions)
    cite1 = 100 * sum(c == d for c, d in zip(cited, expected, strict=True)) / len(expected)
    return replace(score(await rankings(service, questions), expected), cite1=cite1)


def load_questions(path: Path, available: set[str]) -> tuple[list[tuple[str, str]], int]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    kept = [(q.strip(), d.strip()) for q, d in rows if d.strip() in available]
    return kept, len(rows) - len(kept)


def bench_document(filename: str, text: str) -> Document:
    now = datetime.now(UTC)
    return Document(filename, TENANT, filename, "text/plain", "", len(text), "", {}, 0, now, now)


async def _nothing(*_: object) -> None:
    """No trimming, no progress reports."""


async def worker_points(
    corpus: dict[str, str], embedder: CachedEmbedder, chunking: ChunkingPolicy = CHUNKING
) -> list[ChunkPoint]:
    """The points the ingestion worker makes of the corpus (its own `ingest_document`)."""
    points: list[ChunkPoint] = []

    async def collect(document: Document, batch: list[ChunkPoint]) -> None:
        points.extend(batch)

    for filename, text in sorted(corpus.items()):
        await ingest_document(
            text.encode(), bench_document(filename, text), embedder, chunking, collect, _nothing, _nothing
        )
    return points


async def plain_points(
    corpus: dict[str, str], embedder: CachedEmbedder, chunking: ChunkingPolicy = CHUNKING
) -> list[ChunkPoint]:
    """The same chunks as the platform indexed them before: chunk text alone, no heading."""
    points: list[ChunkPoint] = []
    for filename, text in sorted(corpus.items()):
        chunks = split_document(text.encode(), bench_document(filename, text), embedder, chunking)
        vectors = await embedder.embed_documents([c.text for c in chunks])
        points += [
            ChunkPoint(TENANT, filename, filename, c.index, c.text, v) for c, v in zip(chunks, vectors, strict=True)
        ]
    return points


async def build_store(path: Path, points: list[ChunkPoint]) -> EdgeVectorStore:
    store = EdgeVectorStore(path)
    await store.open(len(points[0].vector))
    for start in range(0, len(points), 512):
        await store.upsert(points[start : start + 512])
    return store


async def rankings(service: RetrievalService, questions: list[tuple[str, str]]) -> list[list[str]]:
    results: list[list[ScoredPassage]] = [await service.search(TENANT, q, 10, {}, 0.0) for q, _ in questions]
    return [[p.filename for p in passages] for passages in results]


async def first_citations(service: RetrievalService, questions: list[tuple[str, str]]) -> list[str]:
    """The file an embedded Ask cites first: the extractive answerer over the gateway's default
    top 5 passages, citations assembled as generation assembles them."""
    answerer = ExtractiveAnswerGenerator()
    cited = []
    for question, _ in questions:
        passages = await service.search(TENANT, question, ASK_TOP_K, {}, 0.0)
        answer = answerer.compose(AnswerRequest(TENANT, question, passages))
        citations = assemble_citations(answer, passages)
        cited.append(citations[0].filename if citations else "")
    return cited


async def measure(
    name: str,
    questions_file: Path,
    embedder: CachedEmbedder,
    chunking: ChunkingPolicy,
    reranker: Reranker | None,
    depth: int,
    minilm: CachedEmbedder | None = None,
) -> None:
    """Print one corpus's table: every pipeline on the same questions and chunks (`minilm`: also
    the plain RRF baseline with MiniLM dense vectors, when `embedder` is another model)."""
    corpus = CORPORA[name][0]()
    questions, dropped = load_questions(questions_file, set(corpus))
    await embedder.embed_queries([q for q, _ in questions])
    indexed = {False: await plain_points(corpus, embedder), True: await worker_points(corpus, embedder, chunking)}
    embedder.save()
    print(
        f"# {name}: {len(corpus)} documents, {len(indexed[True])} chunks, {len(questions)} questions "
        f"({dropped} dropped: document missing); heading weight {chunking.heading_weight} "
        f"(sectioned documents {chunking.sectioned_heading_weight}), document weight {chunking.document_weight}"
    )
    rows: list[tuple[str, Scores]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for context in (False, True):
            store = await build_store(Path(tmp) / str(context), indexed[context])
            label = "contextual" if context else "plain"
            try:
                modes: list[tuple[str, RetrievalMode, HybridFusion]] = [
                    ("dense", "dense", HybridFusion()),
                    ("sparse (BM25)", "sparse", HybridFusion()),
                    ("hybrid RRF k=60", "hybrid", HybridFusion()),
                ]
                for mode_name, mode, fusion in modes:
                    service = RetrievalService(embedder, store, 50, RetrievalPolicy(mode=mode, fusion=fusion))
                    rows.append((f"{label:10} {mode_name}", await evaluate(service, questions)))
                if context:
                    # The retrieval service's defaults, as its settings give them.
                    defaults = retrieval_policy(load_settings(RetrievalSettings))
                    default = RetrievalService(embedder, store, 50, defaults)
                    rows.append(("DEFAULT    (contextual, hybrid)", await evaluate(default, questions)))
                    if reranker is not None:
                        policy = replace(defaults, rerank_candidates=depth)
                        reranked = RetrievalService(embedder, store, 50, policy, reranker)
                        rows.append((f"DEFAULT + rerank ({reranker.name})", await evaluate(reranked, questions)))
            finally:
                await store.close()
        if minilm is not None:
            store = await build_store(Path(tmp) / "minilm", await plain_points(corpus, minilm))
            try:
                service = RetrievalService(minilm, store, 50, RetrievalPolicy(mode="hybrid", fusion=HybridFusion()))
                rows.append(("plain      hybrid RRF k=60, MiniLM dense", await evaluate(service, questions)))
            finally:
                await store.close()
    print(f"# dense model: {embedder.name}")
    print(f"{'pipeline':40} {'hit@1':>6} {'hit@5':>6} {'MRR@10':>7} {'cite@1':>7}")
    for row_name, s in rows:
        print(f"{row_name:40} {s.hit1:6.1f} {s.hit5:6.1f} {s.mrr10:7.3f} {s.cite1:7.1f}")
    final = next(s for n, s in rows if n.startswith("DEFAULT "))
    for row_name, baseline in rows:
        if row_name.startswith("plain") and "hybrid" in row_name:
            print(
                f"# {name}: default vs {row_name.split(maxsplit=1)[1]}: hit@1 {final.hit1 - baseline.hit1:+.1f} "
                f"points, first citation of an extractive Ask {final.cite1 - baseline.cite1:+.1f} points"
            )
    print()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus", choices=[*sorted(CORPORA), "all"], default="manpages", help="which corpus to search (all: each)"
    )
    parser.add_argument("--questions", type=Path, help="question<TAB>expected file (default: the corpus's own)")
    parser.add_argument(
        "--embedder",
        choices=["minilm", "e5-small"],
        default="minilm",
        help="the dense model of every row (another than minilm adds the plain RRF baseline with MiniLM dense)",
    )
    parser.add_argument("--embedding-cache", type=Path, help="the --embedder's cache file (default: in bench/results)")
    parser.add_argument(
        "--query-precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="MiniLM's query graph (RAG_MINILM_QUERY_PRECISION); documents stay fp32",
    )
    parser.add_argument("--rerank", choices=["remote", "llm"], help="add a row with this reranker after the default")
    parser.add_argument("--rerank-url", default="", help="the reranker's base URL (TEI/Infinity, or the chat endpoint)")
    parser.add_argument("--rerank-model", default="", help="model name sent to the reranker")
    parser.add_argument("--rerank-candidates", type=int, default=20)
    parser.add_argument("--heading-weight", type=float, help="override the worker's heading weight")
    parser.add_argument(
        "--sectioned-heading-weight", type=float, help="override it for documents that mark sections (HTML)"
    )
    parser.add_argument("--document-weight", type=float, help="override the worker's document-centroid weight")
    args = parser.parse_args()
    if args.corpus == "all" and args.questions is not None:
        parser.error("--questions names one corpus's questions; use it with one --corpus")
    reranker = None
    if args.rerank:
        settings = load_settings(
            RetrievalSettings, rerank=args.rerank, rerank_url=args.rerank_url, rerank_model=args.rerank_model
        )
        reranker = make_reranker(settings)
    embedder = CachedEmbedder(args.embedder, args.embedding_cache, args.query_precision)
    minilm = CachedEmbedder() if args.embedder != "minilm" else None
    chunking = CHUNKING
    if args.heading_weight is not None:
        chunking = replace(chunking, heading_weight=args.heading_weight)
    if args.sectioned_heading_weight is not None:
        chunking = replace(chunking, sectioned_heading_weight=args.sectioned_heading_weight)
    if args.document_weight is not None:
        chunking = replace(chunking, document_weight=args.document_weight)
    for name in sorted(CORPORA) if args.corpus == "all" else [args.corpus]:
        questions_file = args.questions or CORPORA[name][1]
        await measure(name, questions_file, embedder, chunking, reranker, args.rerank_candidates, minilm)
        for cached in (embedder, minilm):
            if cached is not None:
                cached.save()


if __name__ == "__main__":
    asyncio.run(main())
