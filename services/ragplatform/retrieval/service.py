"""Retrieval rules, independent of gRPC: validate, encode the query (dense embedding and/or
sparse terms, as the policy says), search within the tenant in one store call, then rerank the
candidates when a reranker is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import structlog

from ragplatform.backends.embedders.base import Embedder
from ragplatform.backends.rerankers.base import Reranker
from ragplatform.backends.vectors.base import VectorStore
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument, Unavailable
from ragplatform.domain.models import ChunkPoint, HybridFusion, ScoredPassage, SearchQuery
from ragplatform.domain.sparse_encoding import query_vector
from ragplatform.retrieval.query_vectors import QueryVectors

DEFAULT_TOP_K = 5
MAX_QUERY_CHARS = 8000


RetrievalMode = Literal["hybrid", "dense", "sparse"]
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetrievalPolicy:
    """Which candidates a search uses and how they are fused (RAG_RETRIEVAL_MODE, RAG_FUSION*,
    RAG_SPARSE_PAIR_WEIGHT). The field defaults describe the plain hybrid baseline (RRF 1:1, words
    only) that benchmarks compare against; the service's own defaults are its settings', through
    `retrieval.app.retrieval_policy`."""

    mode: RetrievalMode = "hybrid"
    fusion: HybridFusion = field(default_factory=HybridFusion)
    # Candidates fetched for the reranker (when there is one); it returns the best top_k.
    rerank_candidates: int = 20
    # The query's adjacent-word pairs as sparse terms at this weight (0: words only, plain BM25).
    sparse_pair_weight: float = 0.0


class RetrievalService:
    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorStore,
        max_top_k: int,
        policy: RetrievalPolicy | None = None,
        reranker: Reranker | None = None,
        query_cache_size: int = 0,
    ) -> None:
        self._embedder = embedder
        # Repeated questions skip the model (`query_vectors.py`); 0 caches nothing.
        self.query_vectors = QueryVectors(embedder, query_cache_size)
        self._vectors = vectors
        self._max_top_k = max_top_k
        self._policy = policy or RetrievalPolicy()
        self._reranker = reranker

    async def search(
        self,
        tenant_id: str,
        query: str,
        top_k: int,
        filters: dict[str, str],
        score_threshold: float,
        document_ids: tuple[str, ...] = (),
    ) -> list[ScoredPassage]:
        if not tenant_id:
            raise InvalidArgument("tenant_id is required")
        query = query.strip()
        if not query:
            raise InvalidArgument("query is empty; send the text to search for")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"query is longer than {MAX_QUERY_CHARS} characters; shorten it")
        if top_k < 0 or top_k > self._max_top_k:
            raise InvalidArgument(f"top_k must be between 1 and {self._max_top_k} (0 means {DEFAULT_TOP_K})")
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidArgument("score_threshold must be between 0 and 1")
        mode = self._policy.mode
        # Sparse encoding is microseconds of pure Python; the embedding is the expensive part.
        sparse = query_vector(query, self._policy.sparse_pair_weight) if mode != "dense" else None
        if mode == "sparse" and not sparse:
            return []  # only stopwords or punctuation: nothing to match lexically
        vector = await self.query_vectors.vector(tenant_id, query) if mode != "sparse" else []
        top_k = top_k or DEFAULT_TOP_K
        depth = max(top_k, self._policy.rerank_candidates) if self._reranker is not None else top_k
        candidates = await self._vectors.search(
            SearchQuery(
                tenant_id=tenant_id,
                vector=vector,
                top_k=depth,
                filters=filters,
                score_threshold=score_threshold,
                document_ids=document_ids,
                sparse=sparse,
                fusion=self._policy.fusion,
            )
        )
        if self._reranker is None or len(candidates) < 2:
            return candidates[:top_k]
        try:
            return (await self._reranker.rerank(query, candidates))[:top_k]
        except Unavailable as exc:
            # An optional stage being down must not fail the search: first-stage order instead.
            log.warning(
                "reranker unavailable; returning first-stage order", reranker=self._reranker.name, error=str(exc)
            )
            return candidates[:top_k]

    async def upsert(self, points: list[ChunkPoint], embedding_models: tuple[str, ...] = ()) -> int:
        """Index `points`, whose vectors `embedding_models` made ("" = not said: an older worker)."""
        dimension = self._embedder.dimension
        for model in embedding_models:
            if model and model != self._embedder.name:
                raise FailedPrecondition(
                    f"these vectors were made by the embedding model {model!r}, but this platform searches "
                    f"with {self._embedder.name!r}; vectors of two models cannot be compared. Configure the "
                    "workers and retrieval with the same RAG_EMBEDDER settings, then retry the documents"
                )
        for point in points:
            if not point.tenant_id or not point.document_id:
                raise InvalidArgument("tenant_id and document_id are required")
            if len(point.vector) != dimension:
                raise InvalidArgument(
                    f"chunk {point.chunk_index} has a {len(point.vector)}-dimensional vector; this "
                    f"platform's embedder ({self._embedder.name}) makes {dimension}. Configure the "
                    "workers and retrieval with the same RAG_EMBEDDER settings"
                )
        if points:
            await self._vectors.upsert(points)
        return len(points)

    async def delete_document(self, tenant_id: str, document_id: str, keep_below_index: int) -> None:
        if not tenant_id or not document_id:
            raise InvalidArgument("tenant_id and document_id are required")
        if keep_below_index < 0:
            raise InvalidArgument("keep_below_index must be 0 or positive")
        await self._vectors.delete_document(tenant_id, document_id, keep_below_index)
