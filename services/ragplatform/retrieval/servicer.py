"""gRPC face of the retrieval service: proto <-> domain only."""

from __future__ import annotations

from typing import Any

from ragplatform.core.convert import chunks_from_proto, passage_to_proto
from ragplatform.retrieval.service import RetrievalService
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    def __init__(self, service: RetrievalService) -> None:
        self._service = service

    async def Search(self, request: retrieval_pb2.SearchRequest, context: Any) -> retrieval_pb2.SearchResponse:
        passages = await self._service.search(
            request.tenant_id,
            request.query,
            request.top_k,
            dict(request.filters),
            request.score_threshold,
            tuple(request.document_ids),
        )
        return retrieval_pb2.SearchResponse(passages=[passage_to_proto(p) for p in passages])

    async def UpsertChunks(
        self, request: retrieval_pb2.UpsertChunksRequest, context: Any
    ) -> retrieval_pb2.UpsertChunksResponse:
        upserted = await self._service.upsert(chunks_from_proto(request), (request.embedding_model,))
        return retrieval_pb2.UpsertChunksResponse(upserted=upserted)

    async def UpsertDocumentsChunks(
        self, request: retrieval_pb2.UpsertDocumentsChunksRequest, context: Any
    ) -> retrieval_pb2.UpsertChunksResponse:
        points = [point for document in request.documents for point in chunks_from_proto(document)]
        models = {document.embedding_model for document in request.documents}
        return retrieval_pb2.UpsertChunksResponse(upserted=await self._service.upsert(points, tuple(models)))

    async def DeleteDocumentChunks(
        self, request: retrieval_pb2.DeleteDocumentChunksRequest, context: Any
    ) -> retrieval_pb2.DeleteDocumentChunksResponse:
        await self._service.delete_document(request.tenant_id, request.document_id, request.keep_below_index)
        return retrieval_pb2.DeleteDocumentChunksResponse()
