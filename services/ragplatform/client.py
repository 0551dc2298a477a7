"""`GatewayClient`: a small async client for the gateway, used by the CLI, tests and benchmarks.

It sets the API key on every call, a deadline on every call, and streams uploads in 1 MiB
pieces. Errors arrive as `grpc.aio.AioRpcError` with the server's status and message.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

import grpc

from ragplatform.v1 import common_pb2, conversation_pb2, gateway_pb2, gateway_pb2_grpc, ingestion_pb2

UPLOAD_PIECE_BYTES = 1024 * 1024


class GatewayClient:
    def __init__(self, address: str, api_key: str, timeout: float = 60.0) -> None:
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)],
        )
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.timeout = timeout

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def ask(
        self,
        question: str,
        conversation_id: str = "",
        top_k: int = 0,
        filters: dict[str, str] | None = None,
        timeout: float | None = None,
        model: str = "",
    ) -> AsyncIterator[gateway_pb2.AskResponse]:
        call = self._stub.Ask(
            gateway_pb2.AskRequest(
                question=question,
                conversation_id=conversation_id,
                top_k=top_k,
                filters=filters or {},
                model=model,
            ),
            metadata=self._metadata,
            timeout=timeout or self.timeout,
        )
        async for message in call:
            yield message

    async def search(self, query: str, top_k: int = 0) -> gateway_pb2.GatewaySearchResponse:
        return await self._stub.Search(
            gateway_pb2.GatewaySearchRequest(query=query, top_k=top_k),
            metadata=self._metadata,
            timeout=self.timeout,
        )

    async def ingest_bytes(
        self, filename: str, data: bytes, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> ingestion_pb2.UploadResponse:
        async def requests() -> AsyncIterator[gateway_pb2.IngestRequest]:
            yield gateway_pb2.IngestRequest(
                metadata=gateway_pb2.IngestMetadata(
                    filename=filename, content_type=content_type, metadata=metadata or {}
                )
            )
            for start in range(0, len(data), UPLOAD_PIECE_BYTES):
                yield gateway_pb2.IngestRequest(chunk=data[start : start + UPLOAD_PIECE_BYTES])

        return await self._stub.Ingest(requests(), metadata=self._metadata, timeout=self.timeout)

    async def ingest_file(self, path: Path, metadata: dict[str, str] | None = None) -> ingestion_pb2.UploadResponse:
        content_type = mimetypes.guess_type(path.name)[0] or ""
        return await self.ingest_bytes(path.name, path.read_bytes(), content_type, metadata)

    async def get_job(self, job_id: str) -> common_pb2.Job:
        return await self._stub.GetJob(
            gateway_pb2.GatewayGetJobRequest(job_id=job_id), metadata=self._metadata, timeout=self.timeout
        )

    async def list_jobs(
        self,
        state: common_pb2.JobState.ValueType = common_pb2.JOB_STATE_UNSPECIFIED,
        page_size: int = 50,
        page_token: str = "",
    ) -> ingestion_pb2.ListJobsResponse:
        return await self._stub.ListJobs(
            gateway_pb2.GatewayListJobsRequest(state=state, page_size=page_size, page_token=page_token),
            metadata=self._metadata,
            timeout=self.timeout,
        )

    async def list_documents(self, page_size: int = 50, page_token: str = "") -> ingestion_pb2.ListDocumentsResponse:
        return await self._stub.ListDocuments(
            gateway_pb2.GatewayListDocumentsRequest(page_size=page_size, page_token=page_token),
            metadata=self._metadata,
            timeout=self.timeout,
        )

    async def delete_document(self, document_id: str) -> ingestion_pb2.DeleteDocumentResponse:
        return await self._stub.DeleteDocument(
            gateway_pb2.GatewayDeleteDocumentRequest(document_id=document_id),
            metadata=self._metadata,
            timeout=self.timeout,
        )

    async def list_conversations(self, page_size: int = 50) -> conversation_pb2.ListConversationsResponse:
        return await self._stub.ListConversations(
            gateway_pb2.GatewayListConversationsRequest(page_size=page_size),
            metadata=self._metadata,
            timeout=self.timeout,
        )

    async def get_conversation(self, conversation_id: str) -> conversation_pb2.GetHistoryResponse:
        return await self._stub.GetConversation(
            gateway_pb2.GatewayGetConversationRequest(conversation_id=conversation_id),
            metadata=self._metadata,
            timeout=self.timeout,
        )


TERMINAL_STATES = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED)


def job_state_name(state: common_pb2.JobState.ValueType) -> str:
    return common_pb2.JobState.Name(state).removeprefix("JOB_STATE_")
