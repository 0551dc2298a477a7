"""Service-test fixtures: the real services started in-process on port 0, on the embedded backends
(SQLite store and queue, local blobs, the qdrant-edge vector store, the hashing embedder and the
extractive answerer), in the test's own data directory. Every service started through
`ServiceStarter` is stopped when the test ends.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.core.server import RunningService, start_service
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.services_registry import app_builder, settings_class
from ragplatform.v1 import ingestion_pb2
from tests.support.servers import PostgresDatabase

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "docs"
CORPUS = FIXTURES / "corpus"
INVALID = FIXTURES / "invalid"
UPLOAD_LIMIT = 64 * 1024

# Settings every in-process service gets; `load_settings` ignores the ones a class does not read.
# The backend URLs are pinned to the embedded defaults so a RAG_* variable in the developer's
# shell cannot point a test at a real database.
BASE_SETTINGS: dict[str, Any] = {
    "store_url": "",
    "queue_url": "",
    "blob_url": "",
    "vector_url": "",
    "redis_url": None,
    "internal_token": None,
    # These tests call internal services directly; the ones that need the token set it.
    "insecure_internal_calls": True,
    "grpc_host": "127.0.0.1",
    "grpc_port": 0,
    "metrics_enabled": False,
    "embedder": "hashing",
    "llm": "extractive",
    "drain_delay_seconds": 0,
    "log_level": "warning",
    "poll_seconds": 0.05,
    "retry_backoff_seconds": 0.05,
    "max_upload_bytes": UPLOAD_LIMIT,
}


class ServiceStarter:
    """Starts services by their `ragplatform serve` name; stops them all (newest first) at close."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.running: dict[str, RunningService] = {}

    async def start(self, service: str, **overrides: Any) -> RunningService:
        settings = load_settings(settings_class(service), data_dir=self.data_dir, **{**BASE_SETTINGS, **overrides})
        running = await start_service(app_builder(service)(settings), settings)
        self.running[service] = running
        return running

    async def stop(self, service: str) -> None:
        await self.running.pop(service).stop(grace=1.0)

    async def close(self) -> None:
        for service in reversed(list(self.running)):
            await self.stop(service)


# Each module shares one set of services (and one event loop, which gRPC channels need); tests
# keep apart by using their own tenant. Tests that change a service's settings or stop one use
# `starter`, which gives them services of their own.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStarter]:
    services = ServiceStarter(tmp_path_factory.mktemp("services"))
    try:
        yield services
    finally:
        await services.close()


@pytest_asyncio.fixture(loop_scope="module")
async def starter(tmp_path: Path) -> AsyncIterator[ServiceStarter]:
    services = ServiceStarter(tmp_path)
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """RAG_STORE_URL for a test run on each store: the SQLite file (""), then PostgreSQL through
    PgBouncer (a fresh database)."""
    if request.param == "sqlite":
        return ""
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.bouncer_url


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> str:
    """A tenant of this test's own, so tests sharing services never see each other's data."""
    readable = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40]
    return f"{readable}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def retrieval(shared: ServiceStarter) -> RunningService:
    return await shared.start("retrieval")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ingestion(shared: ServiceStarter, retrieval: RunningService) -> RunningService:
    return await shared.start("ingestion", retrieval_addr=retrieval.address)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def generation(shared: ServiceStarter) -> RunningService:
    return await shared.start("generation")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def conversation(shared: ServiceStarter) -> RunningService:
    return await shared.start("conversation")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def retrieval_channel(retrieval: RunningService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(retrieval.address) as channel:
        yield channel


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ingestion_channel(ingestion: RunningService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(ingestion.address) as channel:
        yield channel


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def generation_channel(generation: RunningService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(generation.address) as channel:
        yield channel


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def conversation_channel(conversation: RunningService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(conversation.address) as channel:
        yield channel


@dataclass
class InProcessPlatform:
    """All five services and one worker, wired to each other, in this process."""

    starter: ServiceStarter

    @property
    def gateway(self) -> RunningService:
        return self.starter.running["gateway"]

    def address(self, service: str) -> str:
        return self.starter.running[service].address

    async def create_api_key(self, tenant: str) -> tuple[str, str]:
        """A new key for `tenant`, as `ragplatform keys create` makes it: (key, key id)."""
        store = await open_store(load_settings(StoreSettings, data_dir=self.starter.data_dir, store_url=""))
        try:
            key = generate_api_key()
            record = await store.create_api_key(tenant, f"key for {tenant}", hash_api_key(key))
            return key, record.key_id
        finally:
            await store.close()

    async def revoke_api_key(self, key_id: str) -> None:
        store = await open_store(load_settings(StoreSettings, data_dir=self.starter.data_dir, store_url=""))
        try:
            await store.revoke_api_key(key_id)
        finally:
            await store.close()


async def start_platform(starter: ServiceStarter, **overrides: Any) -> InProcessPlatform:
    """Start every service; `overrides` apply to all of them (e.g. internal_token, rate limits)."""
    for service in ("retrieval", "generation", "conversation"):
        await starter.start(service, **overrides)
    addresses = {f"{name}_addr": starter.running[name].address for name in starter.running}
    await starter.start("ingestion", **addresses, **overrides)
    await starter.start("ingestion-worker", **addresses, **overrides)
    addresses["ingestion_addr"] = starter.running["ingestion"].address
    await starter.start("gateway", **addresses, **overrides)
    return InProcessPlatform(starter)


def upload_messages(
    tenant_id: str,
    filename: str,
    data: bytes,
    labels: dict[str, str] | None = None,
    content_type: str = "",
    piece: int = 16 * 1024,
) -> list[ingestion_pb2.UploadRequest]:
    """An upload stream for the ingestion service: metadata, then the bytes in pieces."""
    messages = [
        ingestion_pb2.UploadRequest(
            metadata=ingestion_pb2.UploadMetadata(
                tenant_id=tenant_id, filename=filename, content_type=content_type, metadata=labels or {}
            )
        )
    ]
    messages.extend(ingestion_pb2.UploadRequest(chunk=data[i : i + piece]) for i in range(0, len(data), piece))
    return messages
