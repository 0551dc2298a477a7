"""A job that runs longer than the visibility timeout keeps its message while its worker lives:
the worker extends the lease of every job in hand (a heartbeat), on the production backends —
PostgreSQL through PgBouncer and Redis Streams; blobs in a local directory and the embedded
qdrant-edge vector store (neither is under test here).

The one test double holds the chunk write open (a document that takes long to index), which no
real component does on demand. Without the heartbeat the same run hands the message to a second
consumer: the control case shows the test can fail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.queue.base import QueueMessage
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import WorkerSettings, load_settings
from ragplatform.domain.models import ChunkPoint, Document, JobState
from ragplatform.ingestion.backends import IngestionBackends, open_ingestion_backends
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.ingestion.service import IngestionService, UploadHeader
from ragplatform.ingestion.worker import IngestionWorker, RetryPolicy
from tests.support.servers import PostgresDatabase, RedisServer

DIMENSION = 64
VISIBILITY_SECONDS = 0.6
HELD_SECONDS = 4 * VISIBILITY_SECONDS
TEXT = b"The Zephyr-9 pump delivers 42 bar at most.\n\nIts impeller is made of bronze.\n"


@pytest.fixture
async def backends(
    postgres_database: PostgresDatabase, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[IngestionBackends, EdgeVectorStore]]:
    settings = load_settings(
        WorkerSettings,
        data_dir=tmp_path,
        store_url=postgres_database.bouncer_url,
        queue_url=redis_server.url,
        queue_name=f"lease-{uuid.uuid4().hex[:8]}",
        visibility_timeout_seconds=VISIBILITY_SECONDS,
        embedder="hashing",
    )
    async with AsyncExitStack() as stack:
        opened = await open_ingestion_backends(stack, settings)
        vectors = EdgeVectorStore(tmp_path / "vectors")
        await vectors.open(DIMENSION)
        stack.push_async_callback(vectors.close)
        yield opened, vectors


@pytest.mark.parametrize("heartbeat", [True, False], ids=["with heartbeat", "without (control)"])
async def test_a_job_longer_than_the_visibility_timeout_is_not_delivered_again(
    backends: tuple[IngestionBackends, EdgeVectorStore], heartbeat: bool
) -> None:
    (store, queue, blobs), vectors = (backends[0].store, backends[0].queue, backends[0].blobs), backends[1]
    writing = asyncio.Event()

    async def slow_index(document: Document, points: list[ChunkPoint]) -> None:
        writing.set()
        await asyncio.sleep(HELD_SECONDS)
        await vectors.upsert(points)

    async def trim(document: Document, keep_below: int) -> None:
        await vectors.delete_document(document.tenant_id, document.document_id, keep_below)

    async def delete_chunks(tenant_id: str, document_id: str) -> None:
        await vectors.delete_document(tenant_id, document_id)

    worker = IngestionWorker(
        store,
        queue,
        blobs,
        HashingEmbedder(DIMENSION),
        slow_index,
        trim,
        ChunkingPolicy(chunk_tokens=16, overlap_tokens=2, embed_batch_size=4),
        RetryPolicy(max_attempts=3, backoff_seconds=0.0),
        poll_seconds=0.05,
        consumer="worker-1",
        lease_seconds=VISIBILITY_SECONDS if heartbeat else None,
    )

    async def pieces() -> AsyncIterator[bytes]:
        yield TEXT

    uploads = IngestionService(store, blobs, queue, delete_chunks, 1024 * 1024)
    outcome = await uploads.upload(UploadHeader("acme", "zephyr.txt", "", {}), pieces())
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    try:
        await asyncio.wait_for(writing.wait(), 10)
        # Another worker polls for work the whole time the first one holds the job.
        taken: list[QueueMessage] = []
        loop = asyncio.get_running_loop()
        until = loop.time() + HELD_SECONDS - VISIBILITY_SECONDS / 2
        while loop.time() < until:
            taken += await queue.receive_many("worker-2", 1, wait_seconds=0.1)
        job = await store.get_job("acme", outcome.job.job_id)
        while job.state != JobState.SUCCEEDED and loop.time() < until + 10:
            await asyncio.sleep(0.05)
            job = await store.get_job("acme", outcome.job.job_id)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)

    if heartbeat:
        assert taken == []
        assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1)
        assert await queue.depth() == 0
    else:
        assert taken, "without the heartbeat the message should have gone to the second consumer"
        assert {m.job_id for m in taken} == {outcome.job.job_id}
