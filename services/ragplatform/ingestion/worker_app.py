"""Wiring of the ingestion worker: a process that serves only gRPC health and metrics, and runs
one worker loop in the background that handles up to RAG_WORKER_CONCURRENCY jobs at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.core.clients import open_channel, upstream_errors
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import ParseSettings, WorkerSettings
from ragplatform.domain.models import Document
from ragplatform.domain.parsers.limits import MIB, ParseLimits
from ragplatform.ingestion.backends import open_ingestion_backends
from ragplatform.ingestion.chunk_writes import RetrievalChunkWriter
from ragplatform.ingestion.index_batcher import IndexBatcher
from ragplatform.ingestion.parse_sandbox import ParseSandbox, SandboxPolicy
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.ingestion.sweeper import LostMessageSweeper
from ragplatform.ingestion.worker import IngestionWorker, RetryPolicy
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc


def build_worker_app(settings: WorkerSettings) -> ServiceApp:
    token = settings.internal_token.get_secret_value() if settings.internal_token else None
    workers: list[IngestionWorker] = []
    sweepers: list[LostMessageSweeper] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            backends = await open_ingestion_backends(stack, settings)
            store, queue, blobs = backends.store, backends.queue, backends.blobs
            embedder = make_embedder(settings)
            stack.push_async_callback(embedder.close)
            # Load the model before reporting SERVING: the first job should not pay for it.
            await embedder.embed_documents(["warm up"])
            channel = open_channel(settings.retrieval_addr, token)
            stack.push_async_callback(channel.close)
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)

            batcher = IndexBatcher(RetrievalChunkWriter(retrieval, embedder.name).write)
            stack.push_async_callback(batcher.close)

            async def trim(document: Document, keep_below: int) -> None:
                request = retrieval_pb2.DeleteDocumentChunksRequest(
                    tenant_id=document.tenant_id, document_id=document.document_id, keep_below_index=keep_below
                )
                with upstream_errors("retrieval"):
                    await retrieval.DeleteDocumentChunks(request, timeout=60)

            sandbox = ParseSandbox(sandbox_policy(settings))
            await sandbox.start()
            stack.push_async_callback(sandbox.close)
            chunking = ChunkingPolicy(
                settings.chunk_tokens,
                settings.chunk_overlap_tokens,
                settings.embed_batch_size,
                settings.chunk_heading_weight,
                settings.chunk_document_weight,
            )
            retry = RetryPolicy(settings.job_max_attempts, settings.retry_backoff_seconds)
            if settings.lost_message_sweep_seconds > 0:
                sweepers.append(
                    LostMessageSweeper(
                        store, queue, settings.lost_message_after_seconds, settings.lost_message_sweep_seconds
                    )
                )
            workers.append(
                IngestionWorker(
                    store,
                    queue,
                    blobs,
                    embedder,
                    batcher.index,
                    trim,
                    chunking,
                    retry,
                    settings.poll_seconds,
                    parse=sandbox.parse,
                    concurrency=settings.worker_concurrency,
                    lease_seconds=settings.visibility_timeout_seconds,
                )
            )

            def register(server: grpc.aio.Server) -> Sequence[str]:
                return []

            yield Wiring(register)

    async def worker_loop(stopping: asyncio.Event) -> None:
        await workers[0].run(stopping)

    async def sweep(stopping: asyncio.Event) -> None:
        await sweepers[0].run(stopping)

    return ServiceApp(
        name="ingestion-worker",
        lifespan=lifespan,
        background=[
            worker_loop,
            *([sweep] if settings.lost_message_sweep_seconds > 0 else []),
        ],
    )


def sandbox_policy(settings: ParseSettings) -> SandboxPolicy:
    """The parse sandbox the RAG_PARSE_* settings describe."""
    return SandboxPolicy(
        limits=ParseLimits(max_content_bytes=settings.parse_max_content_mb * MIB, max_pages=settings.parse_max_pages),
        processes=settings.parse_processes,
        timeout_seconds=settings.parse_timeout_seconds,
        memory_bytes=settings.parse_memory_mb * MIB,
        in_process_max_bytes=settings.parse_in_process_max_kb * 1024,
    )
