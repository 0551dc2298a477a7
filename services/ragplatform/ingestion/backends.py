"""The backends both ingestion processes (the service and the worker) open: store, queue, blobs."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from ragplatform.backends.blobs.base import BlobStore
from ragplatform.backends.blobs.factory import open_blob_store
from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.factory import open_store
from ragplatform.core.settings import IngestionSettings, WorkerSettings


@dataclass(frozen=True)
class IngestionBackends:
    store: Store
    queue: JobQueue
    blobs: BlobStore


async def open_ingestion_backends(
    stack: AsyncExitStack, settings: IngestionSettings | WorkerSettings
) -> IngestionBackends:
    """Open store, queue and blobs, each closed by `stack` (so a failed start closes what opened)."""
    store = await open_store(settings)
    stack.push_async_callback(store.close)
    queue = await open_queue(settings)
    stack.push_async_callback(queue.close)
    blobs = await open_blob_store(settings)
    stack.push_async_callback(blobs.close)
    return IngestionBackends(store, queue, blobs)
