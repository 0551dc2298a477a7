"""RedisStreamsQueue against a real Redis 7: the shared queue contract plus Redis specifics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.queue.redis_streams import GROUP, RedisStreamsQueue, stream_key
from ragplatform.core.settings import QueueSettings, load_settings
from ragplatform.domain.errors import Unavailable
from tests.support.queue_contract import CONTRACT_VISIBILITY_TIMEOUT, EVENTUALLY_SECONDS, QueueContract, new_job
from tests.support.servers import RedisServer, free_port


@pytest.fixture
def queue_settings(redis_server: RedisServer) -> QueueSettings:
    return load_settings(
        QueueSettings,
        queue_url=redis_server.url,
        queue_name=f"test-{uuid.uuid4().hex[:12]}",
        visibility_timeout_seconds=CONTRACT_VISIBILITY_TIMEOUT,
    )


@pytest.fixture
async def queue(queue_settings: QueueSettings) -> AsyncIterator[JobQueue]:
    queue = await open_queue(queue_settings)
    assert isinstance(queue, RedisStreamsQueue)
    try:
        yield queue
    finally:
        await queue.close()


class TestRedisStreamsQueueContract(QueueContract):
    """Every behaviour the embedded queue has, on Redis Streams."""


async def test_keys_follow_the_runtime_contract(queue: JobQueue, queue_settings: QueueSettings) -> None:
    """Stream `ragplatform:queue:<name>`, group `workers`, dead letters in `<stream>:dead`, and
    depth = the group's lag + pending as XINFO GROUPS reports it (what the operator reads)."""
    job = new_job()
    await queue.enqueue(job, "t")
    await queue.enqueue(new_job(), "t")
    message = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert message is not None
    client = redis.Redis.from_url(queue_settings.queue_url, decode_responses=True)
    try:
        stream = stream_key(queue_settings.queue_name)
        assert stream == f"ragplatform:queue:{queue_settings.queue_name}"
        (group,) = await client.xinfo_groups(stream)
        assert group["name"] == GROUP == "workers"
        assert group["lag"] + group["pending"] == 2 == await queue.depth()
        await queue.dead_letter(message, "poison: parser crashed 3 times")
        entries = await client.xrange(stream + ":dead")
        assert entries is not None
        ((_dead_id, fields),) = entries
        assert fields is not None
        assert fields["job_id"] == job
        assert fields["reason"] == "poison: parser crashed 3 times"
    finally:
        await client.aclose()


async def test_a_stale_holder_cannot_release_a_message_someone_else_took_over(queue: JobQueue) -> None:
    job = new_job()
    await queue.enqueue(job, "t")
    first = await queue.receive("slow-worker", wait_seconds=EVENTUALLY_SECONDS)
    second = await queue.receive("other-worker", wait_seconds=EVENTUALLY_SECONDS)  # after the timeout
    assert first is not None
    assert second is not None
    assert second.delivery_count == 2

    await queue.release(first)  # the slow worker wakes up late: must not expose the message

    assert await queue.receive("third-worker", wait_seconds=CONTRACT_VISIBILITY_TIMEOUT / 5) is None
    await queue.ack(second)
    assert await queue.depth() == 0


async def test_delivery_count_survives_a_delayed_release(queue: JobQueue) -> None:
    await queue.enqueue(new_job(), "t")
    first = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert first is not None
    await queue.release(first, delay_seconds=0.2)
    second = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert second is not None
    assert second.job_id == first.job_id
    assert second.delivery_count == 2


async def test_the_group_comes_back_when_redis_loses_it(queue: JobQueue, queue_settings: QueueSettings) -> None:
    """Redis restarted without persistence forgets the stream and its group: the next calls
    re-create them instead of failing with NOGROUP forever."""
    client = redis.Redis.from_url(queue_settings.queue_url)
    try:
        await client.delete(stream_key(queue_settings.queue_name))
    finally:
        await client.aclose()
    assert await queue.receive("w", wait_seconds=0.1) is None
    job = new_job()
    await queue.enqueue(job, "t")
    message = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert message is not None
    assert message.job_id == job


async def test_an_unreachable_redis_is_unavailable_with_what_to_check() -> None:
    settings = load_settings(QueueSettings, queue_url=f"redis://127.0.0.1:{free_port()}/0", queue_name="x")
    with pytest.raises(Unavailable, match="RAG_QUEUE_URL"):
        await open_queue(settings)
