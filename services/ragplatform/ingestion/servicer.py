"""gRPC face of the ingestion service: proto <-> domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ragplatform.core.convert import document_to_proto, job_state_from_proto, job_to_proto
from ragplatform.domain.errors import InvalidArgument
from ragplatform.ingestion.service import IngestionService, UploadHeader
from ragplatform.v1 import common_pb2, ingestion_pb2, ingestion_pb2_grpc


async def read_upload_stream(
    requests: AsyncIterator[ingestion_pb2.UploadRequest],
) -> tuple[ingestion_pb2.UploadMetadata, AsyncIterator[bytes]]:
    """Split an upload stream into its leading metadata and the bytes that follow."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        raise InvalidArgument("an upload must start with a metadata message (filename, content type)")

    async def data() -> AsyncIterator[bytes]:
        async for message in requests:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidArgument("metadata may only be sent once, as the first message of an upload")
            yield message.chunk

    return first.metadata, data()


def upload_response(outcome: Any) -> ingestion_pb2.UploadResponse:
    return ingestion_pb2.UploadResponse(
        document=document_to_proto(outcome.document),
        job=job_to_proto(outcome.job),
        deduplicated=outcome.deduplicated,
    )


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self, service: IngestionService) -> None:
        self._service = service

    async def Upload(
        self, request_iterator: AsyncIterator[ingestion_pb2.UploadRequest], context: Any
    ) -> ingestion_pb2.UploadResponse:
        meta, data = await read_upload_stream(request_iterator)
        header = UploadHeader(meta.tenant_id, meta.filename, meta.content_type, dict(meta.metadata))
        return upload_response(await self._service.upload(header, data))

    async def GetJob(self, request: ingestion_pb2.GetJobRequest, context: Any) -> common_pb2.Job:
        return job_to_proto(await self._service.get_job(request.tenant_id, request.job_id))

    async def ListJobs(self, request: ingestion_pb2.ListJobsRequest, context: Any) -> ingestion_pb2.ListJobsResponse:
        page = await self._service.list_jobs(
            request.tenant_id, job_state_from_proto(request.state), request.page_size, request.page_token
        )
        return ingestion_pb2.ListJobsResponse(
            jobs=[job_to_proto(j) for j in page.items], next_page_token=page.next_cursor
        )

    async def ListDocuments(
        self, request: ingestion_pb2.ListDocumentsRequest, context: Any
    ) -> ingestion_pb2.ListDocumentsResponse:
        page = await self._service.list_documents(request.tenant_id, request.page_size, request.page_token)
        return ingestion_pb2.ListDocumentsResponse(
            documents=[document_to_proto(d) for d in page.items], next_page_token=page.next_cursor
        )

    async def DeleteDocument(
        self, request: ingestion_pb2.DeleteDocumentRequest, context: Any
    ) -> ingestion_pb2.DeleteDocumentResponse:
        document = await self._service.delete_document(request.tenant_id, request.document_id)
        return ingestion_pb2.DeleteDocumentResponse(document=document_to_proto(document))
