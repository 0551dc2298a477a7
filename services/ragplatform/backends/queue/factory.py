"""Choose the job queue from settings: Redis Streams when RAG_QUEUE_URL is set, else SQLite."""

from __future__ import annotations

import importlib

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.queue.sqlite import SqliteQueue
from ragplatform.core.settings import QueueSettings


async def open_queue(settings: QueueSettings) -> JobQueue:
    """An opened queue; the caller closes it.

    Empty RAG_QUEUE_URL: the embedded queue in the SQLite file (RAG_STORE_URL's file when that
    is sqlite://, else RAG_DATA_DIR/ragplatform.db). Otherwise Redis Streams, imported only then
    so the embedded setup never loads the Redis client.
    """
    queue: JobQueue
    if not settings.queue_url:
        queue = SqliteQueue(settings)
    else:
        module = importlib.import_module("ragplatform.backends.queue.redis_streams")
        queue = module.RedisStreamsQueue(settings)
    await queue.open()
    return queue
