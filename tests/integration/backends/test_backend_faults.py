"""Fault tests against real servers: Redis and PostgreSQL restarted under load.

Each must end in a clear error (`Unavailable`, which the services map to gRPC UNAVAILABLE) while
the server is down, then recovery with the SAME client objects (no process restart), and
nothing that was acknowledged as written may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest

from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.store.postgres import PostgresStore
from ragplatform.core.settings import QueueSettings, StoreSettings, load_settings
from ragplatform.domain.errors import Unavailable
from tests.support.servers import PostgresDatabase, PostgresServer, RedisServer

RECOVERY_SECONDS = 30.0


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_redis_restarted_under_load(start_redis: Callable[..., RedisServer]) -> None:
    # Append-only file with fsync on every write, so the restart itself loses nothing (without
    # persistence Redis forgets everything on restart; that is a deployment choice, not ours).
    server = start_redis(appendonly=True)
    queue = await open_queue(
        load_settings(QueueSettings, queue_url=server.url, queue_name="faults", visibility_timeout_seconds=30)
    )
    enqueued: list[str] = []
    received: set[str] = set()
    unavailable: list[Unavailable] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            job = f"job-{n}"
            n += 1
            try:
                await queue.enqueue(job, "t")
                enqueued.append(job)
            except Unavailable as exc:
                unavailable.append(exc)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.002)

    async def consume() -> None:
        while not stop.is_set():
            try:
                message = await queue.receive("worker", wait_seconds=0.2)
                if message is not None:
                    received.add(message.job_id)
                    await queue.ack(message)
            except Unavailable as exc:
                unavailable.append(exc)
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(produce()), asyncio.create_task(consume())]
    try:
        await _eventually(lambda: len(enqueued) >= 50, "load before the restart")
        await asyncio.to_thread(server.stop)
        with pytest.raises(Unavailable, match="RAG_QUEUE_URL"):
            await queue.depth()
        await _eventually(lambda: len(unavailable) >= 2, "the load to notice Redis is down")
        before_restart = len(enqueued)
        await asyncio.to_thread(server.start)
        await _eventually(lambda: len(enqueued) >= before_restart + 50, "enqueues to work again")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # Drain: every enqueue that returned an id comes out at least once. A message whose
    # XREADGROUP reply was lost in the restart sits in the pending list until its visibility
    # timeout runs out, so drain with a short one to take such messages over now.
    drainer = await open_queue(
        load_settings(QueueSettings, queue_url=server.url, queue_name="faults", visibility_timeout_seconds=0.3)
    )
    while (message := await drainer.receive("drainer", wait_seconds=1.0)) is not None:
        received.add(message.job_id)
        await drainer.ack(message)
    await drainer.close()
    assert set(enqueued) <= received
    assert all("Redis for the ingestion queue" in exc.message for exc in unavailable)
    assert await queue.depth() == 0
    await queue.close()


async def test_postgres_restarted_under_load(
    postgres_server: PostgresServer, postgres_database: PostgresDatabase
) -> None:
    store = PostgresStore(
        load_settings(
            StoreSettings, store_url=postgres_database.bouncer_url, store_pool_max=4, store_timeout_seconds=2.0
        )
    )
    await store.open()
    created: list[str] = []
    unavailable: list[Unavailable] = []
    stop = asyncio.Event()

    async def load() -> None:
        n = 0
        while not stop.is_set():
            try:
                conversation = await store.create_conversation("tenant-faults", f"c{n}")
                created.append(conversation.conversation_id)
                n += 1
            except Unavailable as exc:
                unavailable.append(exc)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(load()) for _ in range(3)]
    try:
        await _eventually(lambda: len(created) >= 30, "load before the restart")
        await asyncio.to_thread(postgres_server.stop)
        with pytest.raises(Unavailable, match="RAG_STORE_URL"):
            await store.ping()
        await _eventually(lambda: len(unavailable) >= 2, "the load to notice PostgreSQL is down")
        before_restart = len(created)
        await asyncio.to_thread(postgres_server.start)
        await _eventually(lambda: len(created) >= before_restart + 30, "writes to work again")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(postgres_server.start)  # leave the session server running

    # The same store object works again, and every acknowledged write survived the restart.
    await store.ping()
    stored: set[str] = set()
    cursor = ""
    while True:
        page = await store.list_conversations("tenant-faults", 100, cursor)
        stored |= {c.conversation_id for c in page.items}
        if not (cursor := page.next_cursor):
            break
    assert set(created) <= stored
    assert all("PostgreSQL" in exc.message for exc in unavailable)
    await store.close()


async def test_rate_limits_survive_a_redis_restart_without_new_objects(start_redis: Callable[..., RedisServer]) -> None:
    """While Redis is down the limiter says so (the gateway maps it to UNAVAILABLE); after the
    restart the same limiter works again, re-loading its Lua script into the fresh Redis."""
    from ragplatform.backends.cache.factory import open_rate_limiter
    from ragplatform.core.settings import GatewaySettings

    server = start_redis()
    limiter = await open_rate_limiter(load_settings(GatewaySettings, redis_url=server.url))
    assert await limiter.acquire("key", 100.0, 5) == 0.0
    await asyncio.to_thread(server.stop)
    with pytest.raises(Unavailable, match="RAG_REDIS_URL"):
        await limiter.acquire("key", 100.0, 5)
    await asyncio.to_thread(server.start)
    assert await limiter.acquire("key", 100.0, 5) == 0.0
