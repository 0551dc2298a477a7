"""A small upload's bytes travel to the worker with its job's message (RAG_QUEUE_PAYLOAD_MAX_KB),
on the production backends: PostgreSQL through PgBouncer, Redis Streams, moto's S3 server. The
blob is still stored for re-indexing; the worker ingests without reading it back. The vector
store is the embedded qdrant-edge one (the index target is not what is under test here)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.queue.base import QueueMessage
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import WorkerSettings, load_settings
from ragplatform.domain.models import ChunkPoint, Document, JobState, UploadOutcome
from ragplatform.ingestion.backends import IngestionBackends, open_ingestion_backends
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.ingestion.service import IngestionService, UploadHeader
from ragplatform.ingestion.worker import IngestionWorker, RetryPolicy
from tests.support.servers import (
    MOTO_ACCESS_KEY_ID,
    MOTO_REGION,
    MOTO_SECRET_ACCESS_KEY,
    MotoS3Server,
    PostgresDatabase,
    RedisServer,
)

DIMENSION = 64
PAYLOAD_MAX_BYTES = 4096
SMALL = b"The Zephyr-9 pump delivers 42 bar at most.\n\nIts impeller is made of bronze.\n"
LARGE = b"The ferry timetable lists a departure every hour.\n" * 200  # 10 KB: over the cap


@dataclass
class Platform:
    backends: IngestionBackends
    vectors: EdgeVectorStore
    uploads: IngestionService
    worker: IngestionWorker

    async def upload(self, filename: str, data: bytes) -> UploadOutcome:
        async def pieces() -> AsyncIterator[bytes]:
            yield data

        return await self.uploads.upload(UploadHeader("acme", filename, "", {}), pieces())

    async def receive(self) -> QueueMessage:
        message = await self.backends.queue.receive("worker", wait_seconds=10)
        assert message is not None
        return message


@pytest.fixture
async def platform(
    postgres_database: PostgresDatabase,
    redis_server: RedisServer,
    moto_s3_server: MotoS3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> AsyncIterator[Platform]:
    settings = load_settings(
        WorkerSettings,
        store_url=postgres_database.bouncer_url,
        queue_url=redis_server.url,
        queue_name=f"handoff-{uuid.uuid4().hex[:8]}",
        blob_url=f"s3://{s3_bucket}/uploads",
        s3_endpoint_url=moto_s3_server.endpoint_url,
        s3_region=MOTO_REGION,
        s3_access_key_id=MOTO_ACCESS_KEY_ID,
        s3_secret_access_key=MOTO_SECRET_ACCESS_KEY,
        embedder="hashing",
    )
    async with AsyncExitStack() as stack:
        backends = await open_ingestion_backends(stack, settings)
        vectors = EdgeVectorStore(tmp_path / "vectors")
        await vectors.open(DIMENSION)
        stack.push_async_callback(vectors.close)

        async def index(document: Document, points: list[ChunkPoint]) -> None:
            await vectors.upsert(points)

        async def trim(document: Document, keep_below: int) -> None:
            await vectors.delete_document(document.tenant_id, document.document_id, keep_below)

        async def delete_chunks(tenant_id: str, document_id: str) -> None:
            await vectors.delete_document(tenant_id, document_id)

        store, queue, blobs = backends.store, backends.queue, backends.blobs
        uploads = IngestionService(
            store, blobs, queue, delete_chunks, 1024 * 1024, queue_payload_max_bytes=PAYLOAD_MAX_BYTES
        )
        worker = IngestionWorker(
            store,
            queue,
            blobs,
            HashingEmbedder(DIMENSION),
            index,
            trim,
            ChunkingPolicy(chunk_tokens=16, overlap_tokens=2, embed_batch_size=4),
            RetryPolicy(max_attempts=2, backoff_seconds=0.0),
        )
        yield Platform(backends, vectors, uploads, worker)


async def test_a_small_upload_is_stored_and_ingested_without_reading_it_back(
    platform: Platform, s3_admin: Any, s3_bucket: str
) -> None:
    outcome = await platform.upload("zephyr.txt", SMALL)
    stored = f"uploads/{outcome.document.blob_key}"
    assert s3_admin.get_object(Bucket=s3_bucket, Key=stored)["Body"].read() == SMALL  # kept for re-indexing
    s3_admin.delete_object(Bucket=s3_bucket, Key=stored)  # a read would now fail
    message = await platform.receive()
    assert message.payload == SMALL

    await platform.worker.handle(message)

    job = await platform.backends.store.get_job("acme", outcome.job.job_id)
    assert (job.state, job.error) == (JobState.SUCCEEDED, "")
    assert job.chunks_done == await platform.vectors.count("acme") > 1


async def test_an_upload_over_the_cap_is_read_from_the_object_store(platform: Platform) -> None:
    outcome = await platform.upload("ferry.txt", LARGE)
    message = await platform.receive()
    assert message.payload == b""

    await platform.worker.handle(message)

    job = await platform.backends.store.get_job("acme", outcome.job.job_id)
    assert (job.state, job.error) == (JobState.SUCCEEDED, "")
    assert job.chunks_done == await platform.vectors.count("acme") > 1
