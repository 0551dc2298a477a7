"""gRPC face of the gateway: authenticates (interceptor), then forwards to internal services
with the caller's tenant. No tenant ever comes from the request body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ragplatform.core.clients import upstream_errors
from ragplatform.core.context import tenant_var
from ragplatform.domain.errors import InvalidArgument, Unauthenticated
from ragplatform.gateway.ask import AskFlow
from ragplatform.v1 import (
    common_pb2,
    conversation_pb2,
    conversation_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)


def current_tenant() -> str:
    tenant = tenant_var.get()
    if not tenant:  # the API-key interceptor always sets it; this guards a wiring mistake
        raise Unauthenticated("no tenant for this call; send an API key")
    return tenant


def upload_request(tenant_id: str, message: gateway_pb2.IngestRequest) -> ingestion_pb2.UploadRequest:
    """One upload message for the ingestion service, with the caller's tenant in its metadata."""
    if message.WhichOneof("payload") == "metadata":
        meta = message.metadata
        return ingestion_pb2.UploadRequest(
            metadata=ingestion_pb2.UploadMetadata(
                tenant_id=tenant_id,
                filename=meta.filename,
                content_type=meta.content_type,
                metadata=meta.metadata,
            )
        )
    return ingestion_pb2.UploadRequest(chunk=message.chunk)


async def upload_requests(
    tenant_id: str, first: gateway_pb2.IngestRequest, rest: AsyncIterator[gateway_pb2.IngestRequest]
) -> AsyncIterator[ingestion_pb2.UploadRequest]:
    """The whole upload, message for message; a malformed message is left for the ingestion
    service to refuse with INVALID_ARGUMENT. (An undecodable one raises from `rest`, which makes
    grpc cancel the upstream call; the decoding interceptor then ends this call INVALID_ARGUMENT.)"""
    yield upload_request(tenant_id, first)
    async for message in rest:
        yield upload_request(tenant_id, message)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        ask: AskFlow,
        ingestion: ingestion_pb2_grpc.IngestionServiceStub,
        retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
        conversation: conversation_pb2_grpc.ConversationServiceStub,
        default_top_k: int,
    ) -> None:
        self._ask = ask
        self._ingestion = ingestion
        self._retrieval = retrieval
        self._conversation = conversation
        self._default_top_k = default_top_k

    async def Ask(self, request: gateway_pb2.AskRequest, context: Any) -> AsyncIterator[gateway_pb2.AskResponse]:
        async for message in self._ask.ask(current_tenant(), request):
            yield message

    async def Search(
        self, request: gateway_pb2.GatewaySearchRequest, context: Any
    ) -> gateway_pb2.GatewaySearchResponse:
        with upstream_errors("retrieval"):
            reply = await self._retrieval.Search(
                retrieval_pb2.SearchRequest(
                    tenant_id=current_tenant(),
                    query=request.query,
                    top_k=request.top_k or self._default_top_k,
                    filters=request.filters,
                    score_threshold=request.score_threshold,
                )
            )
        return gateway_pb2.GatewaySearchResponse(passages=reply.passages)

    async def Ingest(
        self, request_iterator: AsyncIterator[gateway_pb2.IngestRequest], context: Any
    ) -> ingestion_pb2.UploadResponse:
        tenant = current_tenant()
        # Check the first message here, so an obviously wrong upload never reaches ingestion.
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise InvalidArgument("the upload stream was empty; send metadata, then the file's bytes")
        if first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("an upload must start with a metadata message (filename, content type)")
        with upstream_errors("ingestion"):
            return await self._ingestion.Upload(upload_requests(tenant, first, request_iterator))

    async def GetJob(self, request: gateway_pb2.GatewayGetJobRequest, context: Any) -> common_pb2.Job:
        with upstream_errors("ingestion"):
            return await self._ingestion.GetJob(
                ingestion_pb2.GetJobRequest(tenant_id=current_tenant(), job_id=request.job_id)
            )

    async def ListJobs(
        self, request: gateway_pb2.GatewayListJobsRequest, context: Any
    ) -> ingestion_pb2.ListJobsResponse:
        with upstream_errors("ingestion"):
            return await self._ingestion.ListJobs(
                ingestion_pb2.ListJobsRequest(
                    tenant_id=current_tenant(),
                    state=request.state,
                    page_size=request.page_size,
                    page_token=request.page_token,
                )
            )

    async def ListDocuments(
        self, request: gateway_pb2.GatewayListDocumentsRequest, context: Any
    ) -> ingestion_pb2.ListDocumentsResponse:
        with upstream_errors("ingestion"):
            return await self._ingestion.ListDocuments(
                ingestion_pb2.ListDocumentsRequest(
                    tenant_id=current_tenant(), page_size=request.page_size, page_token=request.page_token
                )
            )

    async def DeleteDocument(
        self, request: gateway_pb2.GatewayDeleteDocumentRequest, context: Any
    ) -> ingestion_pb2.DeleteDocumentResponse:
        with upstream_errors("ingestion"):
            return await self._ingestion.DeleteDocument(
                ingestion_pb2.DeleteDocumentRequest(tenant_id=current_tenant(), document_id=request.document_id)
            )

    async def ListConversations(
        self, request: gateway_pb2.GatewayListConversationsRequest, context: Any
    ) -> conversation_pb2.ListConversationsResponse:
        with upstream_errors("conversation"):
            return await self._conversation.ListConversations(
                conversation_pb2.ListConversationsRequest(
                    tenant_id=current_tenant(), page_size=request.page_size, page_token=request.page_token
                )
            )

    async def GetConversation(
        self, request: gateway_pb2.GatewayGetConversationRequest, context: Any
    ) -> conversation_pb2.GetHistoryResponse:
        with upstream_errors("conversation"):
            return await self._conversation.GetHistory(
                conversation_pb2.GetHistoryRequest(
                    tenant_id=current_tenant(),
                    conversation_id=request.conversation_id,
                    max_turns=request.max_turns,
                )
            )
