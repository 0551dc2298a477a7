"""The production vector store: a Qdrant server (RAG_VECTOR_URL + RAG_VECTOR_API_KEY), through
qdrant-client's `AsyncQdrantClient`.

Callers may rely on:
* `open(dimension)` creates the collection (cosine distance) if missing - safe when several
  replicas race to create it - and raises `FailedPrecondition` when it exists with another
  dimension (a different embedder was configured than the one that filled it); `open(dimension,
  model)` also records the embedding model in the collection's metadata (`embedding_model`) and
  refuses another model later (`embedder_record.py`).
* Payload indexes on `tenant_id` (keyword, marked as the tenant key so Qdrant co-locates each
  tenant's points), `document_id` (keyword) and `chunk_index` (integer, for partial deletes).
* Every search is filtered on the tenant server-side; metadata filters, document ids and the
  score threshold are added to the same filter.
* Upserts go in batches (`upsert_batch_size` points per request) and wait for the write to be
  applied, so a search right after sees the points; ids are deterministic, so a repeated upsert
  overwrites instead of duplicating.
* An unreachable server, timeouts, 5xx and 429 answers raise `Unavailable`; a refused API key
  raises `FailedPrecondition` naming RAG_VECTOR_API_KEY.
* Every point has the sparse BM25-style vector `payload.SPARSE_VECTOR` (Qdrant's IDF modifier)
  beside the unnamed dense one; a hybrid search is one Query API call (two prefetches fused by
  weighted RRF or DBSF), or, for `relative` fusion, a batch of two (the dense and the sparse
  lists with their scores) fused by `domain.fusion`. A collection created before sparse vectors,
  or before their current encoding (`payload.SPARSE_VECTOR`), gets the sparse vector added on
  `open` (Qdrant >= 1.18 adds a named vector in place) and every point's sparse vector computed
  from its stored text: no document is lost or re-embedded.
The payload layout is `payload.py`'s, shared with the embedded engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ragplatform.backends.vectors.embedder_record import model_to_record
from ragplatform.backends.vectors.payload import (
    CHUNK_INDEX,
    DOCUMENT_ID,
    HEADING,
    SPARSE_VECTOR,
    TENANT_ID,
    TEXT,
    chunk_payload,
    metadata_path,
    scored_passage,
    sparse_document_vector,
)
from ragplatform.backends.vectors.points_writer import PointsWriter
from ragplatform.core.redaction import redact_url
from ragplatform.core.settings import VectorServerSettings
from ragplatform.domain.errors import FailedPrecondition, Internal, InvalidArgument, Unavailable
from ragplatform.domain.fusion import relative_score_fusion
from ragplatform.domain.models import ChunkPoint, HybridFusion, ScoredPassage, SearchQuery, SparseVector

DEFAULT_UPSERT_BATCH = 256
REQUEST_TIMEOUT_SECONDS = 30
_SPARSE_PARAMS = models.SparseVectorParams(modifier=models.Modifier.IDF)
_EMBEDDING_MODEL = "embedding_model"  # the collection metadata key recording the embedder


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _fusion(fusion: HybridFusion) -> models.Query:
    if fusion.method == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    if fusion.method == "relative":
        raise InvalidArgument("relative fusion is not the engine's: the store fuses it itself (_relative_search)")
    return models.RrfQuery(rrf=models.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, fusion.sparse_weight]))


def _tenant_condition(tenant_id: str) -> models.FieldCondition:
    return models.FieldCondition(key=TENANT_ID, match=models.MatchValue(value=tenant_id))


class QdrantServerStore:
    """`VectorStore` on a Qdrant server. `client` may be injected (tests use qdrant-client's
    local mode, which speaks the same API)."""

    def __init__(
        self,
        settings: VectorServerSettings,
        *,
        client: AsyncQdrantClient | None = None,
        upsert_batch_size: int = DEFAULT_UPSERT_BATCH,
    ) -> None:
        self._url = redact_url(settings.vector_url)
        self._collection = settings.vector_collection
        api_key = settings.vector_api_key.get_secret_value() if settings.vector_api_key else None
        self._client = client or AsyncQdrantClient(
            url=settings.vector_url,
            api_key=api_key,
            timeout=REQUEST_TIMEOUT_SECONDS,
            # The compatibility check is a blocking HTTP call made in the constructor: it would
            # stall the event loop (and warn when Qdrant is briefly down at start-up).
            check_compatibility=False,
        )
        # Upserts, the workers' hot path, go as one JSON body over aiohttp when talking to a server
        # (not to an injected client): see `PointsWriter`.
        self._writer = (
            PointsWriter(settings.vector_url, settings.vector_collection, api_key, REQUEST_TIMEOUT_SECONDS)
            if client is None
            else None
        )
        self._batch = max(1, upsert_batch_size)
        self._dimension = 0

    @property
    def collection(self) -> str:
        return self._collection

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self, dimension: int, model: str = "") -> None:
        async with self._errors("open the collection"):
            if not await self._client.collection_exists(self._collection):
                await self._create_collection(dimension, model)
            info = await self._client.get_collection(self._collection)
            vectors = info.config.params.vectors
            size = vectors.size if isinstance(vectors, models.VectorParams) else None
            if size != dimension:
                raise FailedPrecondition(
                    f"the Qdrant collection {self._collection!r} holds vectors of dimension {size}, but the "
                    f"configured embedder makes {dimension}; point RAG_VECTOR_COLLECTION at a new collection "
                    "(and re-ingest) or configure the embedder that filled it"
                )
            if model:
                await self._check_model(info, model)
            if SPARSE_VECTOR not in (info.config.params.sparse_vectors or {}):
                await self._add_sparse_vector()
            for field, schema in (
                (TENANT_ID, models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)),
                (DOCUMENT_ID, models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
                (CHUNK_INDEX, models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER)),
            ):
                # Idempotent on the server: an existing index with the same schema is kept.
                await self._client.create_payload_index(self._collection, field, field_schema=schema, wait=True)
        self._dimension = dimension

    async def _add_sparse_vector(self) -> None:
        """Upgrade a collection made before sparse vectors: add the named sparse vector, then
        compute every point's from its stored heading and text (payloads are read, never
        rewritten). Safe when replicas race: both write the same vectors."""
        config = models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF))
        try:
            await self._client.create_vector_name(self._collection, SPARSE_VECTOR, config, wait=True)
        except UnexpectedResponse as exc:
            if exc.status_code != 409:  # another replica added it first: fine
                raise
        offset: Any = None
        while True:
            records, offset = await self._client.scroll(
                self._collection, limit=self._batch, offset=offset, with_payload=[TEXT, HEADING], with_vectors=False
            )
            vectors = [
                models.PointVectors(
                    id=record.id,
                    vector={
                        SPARSE_VECTOR: _sparse(
                            sparse_document_vector(
                                str((record.payload or {}).get(HEADING, "")), str((record.payload or {}).get(TEXT, ""))
                            )
                        )
                    },
                )
                for record in records
            ]
            if vectors:
                await self._client.update_vectors(self._collection, points=vectors, wait=True)
            if offset is None:
                return

    async def _check_model(self, info: models.CollectionInfo, model: str) -> None:
        """Record the embedding model in the collection, or raise if another one filled it."""
        recorded = (info.config.metadata or {}).get(_EMBEDDING_MODEL)
        recorded = recorded if isinstance(recorded, str) else None
        name = model_to_record(
            f"the Qdrant collection {self._collection!r}",
            recorded,
            model,
            bool(info.points_count),
            "point RAG_VECTOR_COLLECTION at a new collection and ingest the documents again",
        )
        if name != recorded:
            await self._client.update_collection(self._collection, metadata={_EMBEDDING_MODEL: name})

    async def _create_collection(self, dimension: int, model: str) -> None:
        try:
            await self._client.create_collection(
                self._collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                sparse_vectors_config={SPARSE_VECTOR: _SPARSE_PARAMS},
                metadata={_EMBEDDING_MODEL: model} if model else None,
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:  # another replica created it first: fine
                raise
        except ValueError as exc:  # local mode's "already exists"
            if "already exists" not in str(exc):
                raise

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        await self._client.close()

    @asynccontextmanager
    async def _errors(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except UnexpectedResponse as exc:
            if exc.status_code in (401, 403):
                raise FailedPrecondition(
                    f"Qdrant at {self._url} refused to {action} ({exc.status_code}); check RAG_VECTOR_API_KEY"
                ) from exc
            if exc.status_code is not None and (exc.status_code == 429 or exc.status_code >= 500):
                raise self._unavailable(action, exc) from exc
            # Any other refusal is a request this adapter should not have made: say which and why.
            reason = exc.content.decode("utf-8", "replace")[:300] if exc.content else exc.reason_phrase
            raise Internal(
                f"Qdrant at {self._url} refused to {action} ({exc.status_code}: {reason}); this Qdrant "
                "version or collection may not match what RagPlatform expects - check the Qdrant logs and "
                "report it with this message"
            ) from exc
        except (ResponseHandlingException, httpx.TransportError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"Qdrant at {self._url} could not {action} ({exc.__class__.__name__}: {exc}); check "
            "RAG_VECTOR_URL and that Qdrant is running, then retry"
        )

    # --- points --------------------------------------------------------------------------------
    async def upsert(self, points: list[ChunkPoint]) -> None:
        for point in points:
            if self._dimension and len(point.vector) != self._dimension:
                raise FailedPrecondition(
                    f"a vector of dimension {len(point.vector)} cannot go into the Qdrant collection "
                    f"{self._collection!r} of dimension {self._dimension}; the embedder changed - restart "
                    "the workers with the embedder the collection was made for"
                )
        for start in range(0, len(points), self._batch):
            async with self._errors("store vectors"):
                await self._upsert_fitting(points[start : start + self._batch])

    async def _upsert_fitting(self, batch: list[ChunkPoint]) -> None:
        """Write `batch`, halving it while Qdrant refuses the request as too large (413: over its
        `service.max_request_size_mb`), so large chunks or metadata cost requests, not documents."""
        try:
            await self._upsert_batch(batch)
        except UnexpectedResponse as exc:
            if exc.status_code != 413:
                raise
            if len(batch) == 1:
                raise FailedPrecondition(
                    f"Qdrant at {self._url} refused the point of chunk {batch[0].chunk_index} of document "
                    f"{batch[0].document_id!r} as too large (413) even alone; raise Qdrant's "
                    "service.max_request_size_mb, or shorten that document's metadata"
                ) from exc
            half = len(batch) // 2
            await self._upsert_fitting(batch[:half])
            await self._upsert_fitting(batch[half:])

    async def _upsert_batch(self, batch: list[ChunkPoint]) -> None:
        if self._writer is not None:
            await self._writer.upsert(batch)
            return
        structs = [
            models.PointStruct(
                id=p.point_id,
                vector={"": p.vector, SPARSE_VECTOR: _sparse(sparse_document_vector(p.heading, p.text))},
                payload=chunk_payload(p),
            )
            for p in batch
        ]
        await self._client.upsert(self._collection, points=structs, wait=True)

    async def search(self, query: SearchQuery) -> list[ScoredPassage]:
        if query.top_k < 1:
            raise InvalidArgument(f"top_k must be at least 1, not {query.top_k}")
        must: list[models.Condition] = [_tenant_condition(query.tenant_id)]
        for key, value in sorted(query.filters.items()):
            must.append(models.FieldCondition(key=metadata_path(key), match=models.MatchValue(value=value)))
        if query.document_ids:
            must.append(models.FieldCondition(key=DOCUMENT_ID, match=models.MatchAny(any=list(query.document_ids))))
        query_filter = models.Filter(must=must)
        if query.fused_by_relative_score:
            return await self._relative_search(query, query_filter)
        async with self._errors("search"):
            response = await self._client.query_points(
                self._collection, **self._query(query, query_filter), query_filter=query_filter, with_payload=True
            )
        return [scored_passage(point.id, point.score, point.payload) for point in response.points]

    async def _relative_search(self, query: SearchQuery, query_filter: models.Filter) -> list[ScoredPassage]:
        """Hybrid with `relative` fusion (`domain.fusion`): the dense and the sparse candidates
        with their scores and payloads in one batch call (the same stages as `_query`'s), fused
        here. Payloads come with the lists: a second request for the fused best's payloads cost
        the client more CPU than parsing them (bench figures in docs/retrieval.md)."""
        depth = max(query.fusion.candidates, query.top_k)
        dense_args = self._query(replace(query, top_k=depth, sparse=None), query_filter)
        sparse_args = self._query(replace(query, top_k=depth, vector=[]), query_filter)
        if query.score_threshold > 0:  # the sparse list ranks only the dense candidates above it
            sparse_args["prefetch"] = [
                models.Prefetch(
                    query=query.vector, limit=depth, filter=query_filter, score_threshold=query.score_threshold
                )
            ]
        requests = [
            models.QueryRequest(**args, filter=query_filter, with_payload=True) for args in (dense_args, sparse_args)
        ]
        async with self._errors("search"):
            dense, sparse = await self._client.query_batch_points(self._collection, requests=requests)
        points = {str(point.id): point for point in (*sparse.points, *dense.points)}
        fused = relative_score_fusion(
            [(str(point.id), point.score) for point in dense.points],
            [(str(point.id), point.score) for point in sparse.points],
            query.fusion.dense_weight,
            query.fusion.sparse_weight,
            query.top_k,
        )
        return [scored_passage(points[key].id, score, points[key].payload) for key, score in fused]

    @staticmethod
    def _query(query: SearchQuery, query_filter: models.Filter) -> dict[str, Any]:
        """The Query API arguments: dense, sparse, or both as prefetches fused in one call (the
        same plan as the embedded engine's `search_request`)."""
        # 0 means "no threshold": cosine scores can be negative.
        threshold = query.score_threshold if query.score_threshold > 0 else None
        sparse = query.sparse if query.sparse is not None and len(query.sparse) > 0 else None
        if query.vector and sparse is not None:
            depth = max(query.fusion.candidates, query.top_k)
            dense_stage = models.Prefetch(
                query=query.vector, limit=depth, filter=query_filter, score_threshold=threshold
            )
            # With a threshold, the sparse list re-ranks only the dense candidates above it.
            sparse_stage = models.Prefetch(
                query=_sparse(sparse),
                using=SPARSE_VECTOR,
                limit=depth,
                filter=query_filter,
                prefetch=[dense_stage] if threshold is not None else None,
            )
            return {"prefetch": [dense_stage, sparse_stage], "query": _fusion(query.fusion), "limit": query.top_k}
        if sparse is not None:
            return {"query": _sparse(sparse), "using": SPARSE_VECTOR, "limit": query.top_k}
        if not query.vector:
            raise InvalidArgument("a search needs a query vector or query terms; the query has neither.")
        return {"query": query.vector, "limit": query.top_k, "score_threshold": threshold}

    async def delete_document(self, tenant_id: str, document_id: str, keep_below_index: int = 0) -> None:
        must: list[models.Condition] = [
            _tenant_condition(tenant_id),
            models.FieldCondition(key=DOCUMENT_ID, match=models.MatchValue(value=document_id)),
        ]
        if keep_below_index > 0:
            must.append(models.FieldCondition(key=CHUNK_INDEX, range=models.Range(gte=keep_below_index)))
        async with self._errors("delete vectors"):
            await self._client.delete(
                self._collection, points_selector=models.FilterSelector(filter=models.Filter(must=must)), wait=True
            )

    async def count(self, tenant_id: str | None = None) -> int:
        count_filter = models.Filter(must=[_tenant_condition(tenant_id)]) if tenant_id is not None else None
        async with self._errors("count vectors"):
            result = await self._client.count(self._collection, count_filter=count_filter, exact=True)
        return int(result.count)
