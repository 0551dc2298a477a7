"""How a worker stores and trims embedded chunks: straight into the Qdrant server when it has
RAG_VECTOR_URL (`VectorStoreChunkWriter`), else through the retrieval service
(`RetrievalChunkWriter`, the embedded engine lives in that process). Both write several
documents per call (fed by the `IndexBatcher`) and fail the whole call or none of it.

Why a worker writes to Qdrant itself (measured in docs/performance.md, "Stop 16"): through the
retrieval service every chunk was encoded to protobuf by the worker, decoded into domain objects
by retrieval and encoded again to Qdrant's JSON, and a write waited on a third process. Written
directly, a small document costs ~1.5 ms less CPU over both processes and its write one hop less.
The guard retrieval kept on every write holds at the worker's start instead: `open(dimension,
model)` refuses a collection of another dimension or filled by another embedding model (the
collection records its model), and every point's dimension is checked before a write.

During a rolling upgrade the workers may run before the retrieval service that has the batched
`UpsertDocumentsChunks`: an older retrieval answers it UNIMPLEMENTED. Then each document goes in
its own `UpsertChunks` call (what older workers send), and the batched call is tried again after
`retry_batched_seconds`, so a worker picks it up once retrieval is upgraded. No job fails or
retries because of the order in which the tiers roll.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import grpc
import structlog

from ragplatform.core.clients import upstream_errors
from ragplatform.core.convert import chunks_to_proto
from ragplatform.domain.models import ChunkPoint, Document
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc

if TYPE_CHECKING:  # qdrant-client is imported only where a Qdrant server is configured
    from ragplatform.backends.vectors.qdrant_server import QdrantServerStore

log = structlog.get_logger("ragplatform.ingestion.chunk_writes")

WRITE_TIMEOUT_SECONDS = 60.0


class ChunkWriter(Protocol):
    async def write(self, documents: list[tuple[Document, list[ChunkPoint]]]) -> None:
        """Store the chunks of `documents` (each document's chunks all, or the call fails)."""

    async def trim(self, document: Document, keep_below: int) -> None:
        """Remove the chunks of `document` whose index is `keep_below` or more."""


class VectorStoreChunkWriter:
    """Writes to the Qdrant server itself; `vectors` must be open (`open(dimension, model)`)."""

    def __init__(self, vectors: QdrantServerStore) -> None:
        self._vectors = vectors

    async def write(self, documents: list[tuple[Document, list[ChunkPoint]]]) -> None:
        await self._vectors.upsert([point for _document, points in documents for point in points])

    async def trim(self, document: Document, keep_below: int) -> None:
        await self._vectors.delete_document(document.tenant_id, document.document_id, keep_below)


class RetrievalChunkWriter:
    def __init__(
        self,
        retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
        embedding_model: str = "",
        retry_batched_seconds: float = 60.0,
    ) -> None:
        self._retrieval = retrieval
        self._model = embedding_model  # sent with every write: retrieval refuses another model's vectors
        self._retry_batched_seconds = retry_batched_seconds
        self._one_by_one_until = 0.0  # monotonic time before which retrieval is taken to be older

    async def write(self, documents: list[tuple[Document, list[ChunkPoint]]]) -> None:
        if time.monotonic() >= self._one_by_one_until:
            request = retrieval_pb2.UpsertDocumentsChunksRequest(
                documents=[chunks_to_proto(document, points, self._model) for document, points in documents]
            )
            with upstream_errors("retrieval"):
                try:
                    await self._retrieval.UpsertDocumentsChunks(request, timeout=WRITE_TIMEOUT_SECONDS)
                    return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
            self._one_by_one_until = time.monotonic() + self._retry_batched_seconds
            log.warning(
                "retrieval_without_batched_writes",
                detail="the retrieval service predates UpsertDocumentsChunks (a rolling upgrade?): "
                "writing one document per call until it is upgraded",
                retry_batched_seconds=self._retry_batched_seconds,
            )
        for document, points in documents:
            with upstream_errors("retrieval"):
                request_one = chunks_to_proto(document, points, self._model)
                await self._retrieval.UpsertChunks(request_one, timeout=WRITE_TIMEOUT_SECONDS)

    async def trim(self, document: Document, keep_below: int) -> None:
        request = retrieval_pb2.DeleteDocumentChunksRequest(
            tenant_id=document.tenant_id, document_id=document.document_id, keep_below_index=keep_below
        )
        with upstream_errors("retrieval"):
            await self._retrieval.DeleteDocumentChunks(request, timeout=WRITE_TIMEOUT_SECONDS)
