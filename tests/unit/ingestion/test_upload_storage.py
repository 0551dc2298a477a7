"""How an upload reaches the object store, on the real embedded backends (SQLite store and
queue, local blob store). `CountingBlobs` is a thin wrapper that counts the calls the service
makes to the real local store: the behaviour under test is how many round trips an upload costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from ragplatform.backends.blobs.base import BlobStore
from ragplatform.backends.blobs.factory import open_blob_store
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.store.factory import open_store
from ragplatform.core.settings import IngestionSettings, load_settings
from ragplatform.ingestion.service import PUT_WITHOUT_LOOKUP_BYTES, IngestionService, UploadHeader


@dataclass
class CountingBlobs:
    inner: BlobStore
    puts: int = 0
    lookups: int = 0

    async def exists(self, key: str) -> bool:
        self.lookups += 1
        return await self.inner.exists(key)

    async def put(self, key: str, data: BinaryIO, size: int) -> None:
        self.puts += 1
        await self.inner.put(key, data, size)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[IngestionService, CountingBlobs]]:
    settings = load_settings(IngestionSettings, data_dir=tmp_path, store_url="", queue_url="", blob_url="")
    store = await open_store(settings)
    queue = await open_queue(settings)
    blobs = CountingBlobs(await open_blob_store(settings))

    async def delete_chunks(tenant_id: str, document_id: str) -> None:
        return None

    try:
        yield IngestionService(store, blobs, queue, delete_chunks, 4 * PUT_WITHOUT_LOOKUP_BYTES), blobs
    finally:
        await blobs.close()
        await queue.close()
        await store.close()


async def upload(service: IngestionService, name: str, data: bytes) -> str:
    """Upload `data` as `name` for tenant acme; return its blob key."""

    async def pieces() -> AsyncIterator[bytes]:
        yield data

    outcome = await service.upload(UploadHeader("acme", name, "", {}), pieces())
    return outcome.document.blob_key


async def test_a_small_upload_costs_one_put_and_no_lookup(service: tuple[IngestionService, CountingBlobs]) -> None:
    ingestion, blobs = service
    key = await upload(ingestion, "small.txt", b"The Zephyr-9 pump delivers 42 bar.")
    assert (blobs.puts, blobs.lookups) == (1, 0)
    assert await blobs.inner.get(key) == b"The Zephyr-9 pump delivers 42 bar."


async def test_a_large_upload_already_stored_is_not_transferred_again(
    service: tuple[IngestionService, CountingBlobs],
) -> None:
    ingestion, blobs = service
    large = b"pump " * (PUT_WITHOUT_LOOKUP_BYTES // 4)
    key = await upload(ingestion, "large.txt", large)
    await upload(ingestion, "large-copy.txt", large)
    assert (blobs.puts, blobs.lookups) == (1, 2)
    assert await blobs.inner.get(key) == large
