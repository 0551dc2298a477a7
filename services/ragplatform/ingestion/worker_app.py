"""Wiring of the ingestion worker: a process that serves only gRPC health and metrics, and runs
one worker loop in the background that handles up to RAG_WORKER_CONCURRENCY jobs at once. Chunks
go to the Qdrant server directly when RAG_VECTOR_URL is set, else through the retrieval service
(`chunk_writes.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.embedders.base import Embedder
from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.core.clients import open_channel
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import ParseSettings, WorkerSettings
from ragplatform.domain.parsers.limits import MIB, ParseLimits
from ragplatform.ingestion.backends import open_ingestion_backends
from ragplatform.ingestion.chunk_writes import ChunkWriter, RetrievalChunkWriter, VectorStoreChunkWriter
from ragplatform.ingestion.index_batcher import IndexBatcher
from ragplatform.ingestion.parse_sandbox import ParseSandbox, SandboxPolicy
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.ingestion.sweeper import LostMessageSweeper
from ragplatform.ingestion.worker import IngestionWorker, RetryPolicy
from ragplatform.v1 import retrieval_pb2_grpc


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
            writer = await open_chunk_writer(stack, settings, token, embedder)
            batcher = IndexBatcher(writer.write)
            stack.push_async_callback(batcher.close)

            sandbox = ParseSandbox(sandbox_policy(settings))
            await sandbox.start()
            stack.push_async_callback(sandbox.close)
            chunking = ChunkingPolicy(
                settings.chunk_tokens,
                settings.chunk_overlap_tokens,
                settings.embed_batch_size,
                heading_weight=settings.chunk_heading_weight,
                sectioned_heading_weight=settings.chunk_sectioned_heading_weight,
                document_weight=settings.chunk_document_weight,
            )
            retry = RetryPolicy(
                settings.job_max_attempts, settings.retry_backoff_seconds, settings.job_attempt_timeout_seconds
            )
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
                    writer.trim,
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


async def open_chunk_writer(
    stack: AsyncExitStack, settings: WorkerSettings, token: str | None, embedder: Embedder
) -> ChunkWriter:
    """Where the worker stores chunks: the Qdrant server itself when RAG_VECTOR_URL names one
    (opened now: a collection of another dimension or embedding model is refused before any
    job runs), else the retrieval service. Closed with `stack`."""
    if settings.vector_url:
        from ragplatform.backends.vectors.qdrant_server import QdrantServerStore  # qdrant-client: only then

        vectors = QdrantServerStore(settings)
        stack.push_async_callback(vectors.close)
        await vectors.open(embedder.dimension, embedder.name)
        return VectorStoreChunkWriter(vectors)
    channel = open_channel(settings.retrieval_addr, token)
    stack.push_async_callback(channel.close)
    return RetrievalChunkWriter(retrieval_pb2_grpc.RetrievalServiceStub(channel), embedder.name)


def sandbox_policy(settings: ParseSettings) -> SandboxPolicy:
    """The parse sandbox the RAG_PARSE_* settings describe."""
    return SandboxPolicy(
        limits=ParseLimits(max_content_bytes=settings.parse_max_content_mb * MIB, max_pages=settings.parse_max_pages),
        processes=settings.parse_processes,
        timeout_seconds=settings.parse_timeout_seconds,
        memory_bytes=settings.parse_memory_mb * MIB,
        in_process_max_bytes=settings.parse_in_process_max_kb * 1024,
    )
