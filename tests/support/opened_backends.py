"""A store and a queue opened from one settings object, closed together (queue first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.factory import open_store
from ragplatform.core.settings import QueueSettings


@asynccontextmanager
async def opened_backends(settings: QueueSettings) -> AsyncIterator[tuple[Store, JobQueue]]:
    store = await open_store(settings)
    try:
        queue = await open_queue(settings)
        try:
            yield store, queue
        finally:
            await queue.close()
    finally:
        await store.close()
