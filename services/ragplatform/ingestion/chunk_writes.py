"""How a worker stores embedded chunks: through the retrieval service, several documents per
call (`UpsertDocumentsChunks`, fed by the `IndexBatcher`).

During a rolling upgrade the workers may run before the retrieval service that has that method:
an older retrieval answers it UNIMPLEMENTED. Then each document goes in its own `UpsertChunks`
call (what older workers send), and the batched call is tried again after `retry_batched_seconds`,
so a worker picks it up once retrieval is upgraded. No job fails or retries because of the order
in which the tiers roll.
"""

from __future__ import annotations

import time

import grpc
import structlog

from ragplatform.core.clients import upstream_errors
from ragplatform.core.convert import chunks_to_proto
from ragplatform.domain.models import ChunkPoint, Document
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc

log = structlog.get_logger("ragplatform.ingestion.chunk_writes")

WRITE_TIMEOUT_SECONDS = 60.0


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
        """Store the chunks of `documents` (each document's chunks all, or the call fails)."""
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
