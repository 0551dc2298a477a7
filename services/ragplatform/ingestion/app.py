"""Wiring of the ingestion service: store, blobs, queue, retrieval channel -> `ServiceApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.core.clients import open_channel, upstream_errors
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import IngestionSettings
from ragplatform.domain.page_tokens import PageTokens, page_token_key
from ragplatform.ingestion.backends import open_ingestion_backends
from ragplatform.ingestion.service import IngestionService
from ragplatform.ingestion.servicer import IngestionServicer
from ragplatform.v1 import ingestion_pb2, ingestion_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

SERVICE_NAME = ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"].full_name


def build_app(settings: IngestionSettings) -> ServiceApp:
    token = settings.internal_token.get_secret_value() if settings.internal_token else None

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            backends = await open_ingestion_backends(stack, settings)
            store, queue, blobs = backends.store, backends.queue, backends.blobs
            channel = open_channel(settings.retrieval_addr, token)
            stack.push_async_callback(channel.close)
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)

            async def delete_chunks(tenant_id: str, document_id: str) -> None:
                with upstream_errors("retrieval"):
                    await retrieval.DeleteDocumentChunks(
                        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant_id, document_id=document_id),
                        timeout=30,
                    )

            service = IngestionService(
                store,
                blobs,
                queue,
                delete_chunks,
                settings.max_upload_bytes,
                PageTokens(page_token_key(token)),
                queue_payload_max_bytes=settings.queue_payload_max_kb * 1024,
            )
            servicer = IngestionServicer(service)

            def register(server: grpc.aio.Server) -> Sequence[str]:
                ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(servicer, server)
                return [SERVICE_NAME]

            yield Wiring(register)

    return ServiceApp(name="ingestion", lifespan=lifespan)
