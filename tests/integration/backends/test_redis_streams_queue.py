"""RedisStreamsQueue against a real Redis 7: the shared queue contract plus Redis specifics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.queue.redis_streams import GROUP, PAYLOAD_TTL_SECONDS, RedisStreamsQueue, stream_key
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


# Bytes that are not UTF-8 (a PDF's would not be either): they must come back unchanged.
PAYLOAD = b"%PDF-1.7\n\xff\xfe\x00binary\x80" * 50


async def test_a_payload_travels_with_its_message_until_acked(queue: JobQueue, queue_settings: QueueSettings) -> None:
    """Received with the message on the first delivery, on a redelivery after the visibility
    timeout and after a release; kept in a key of its own with a TTL, deleted by the ack."""
    job = new_job()
    await queue.enqueue(job, "t", payload=PAYLOAD)
    await queue.enqueue(new_job(), "t")
    first, plain = await queue.receive_many("w", 2, wait_seconds=EVENTUALLY_SECONDS)
    assert (first.job_id, first.payload, plain.payload) == (job, PAYLOAD, b"")
    await queue.ack(plain)
    again = await queue.receive("other", wait_seconds=EVENTUALLY_SECONDS)  # after the visibility timeout
    assert again is not None
    assert (again.job_id, again.delivery_count, again.payload) == (job, 2, PAYLOAD)
    await queue.release(again, delay_seconds=0.05)
    released = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert released is not None
    assert (released.job_id, released.payload) == (job, PAYLOAD)

    client = redis.Redis.from_url(queue_settings.queue_url, decode_responses=True)
    try:
        stream = stream_key(queue_settings.queue_name)
        key = f"{stream}:payload:{job}"
        assert 0 < await client.ttl(key) <= PAYLOAD_TTL_SECONDS
        entries = await client.xrange(stream) or []
        assert all(set(fields or {}) <= {"job_id", "tenant_id", "deliveries", "traceparent"} for _id, fields in entries)
        await queue.ack(released)
        assert not await client.exists(key)
    finally:
        await client.aclose()


async def test_a_payload_reaches_a_consumer_blocked_waiting(queue: JobQueue) -> None:
    waiting = asyncio.create_task(queue.receive("w", wait_seconds=EVENTUALLY_SECONDS))
    await asyncio.sleep(0.2)  # the receive is blocked in XREADGROUP by now
    job = new_job()
    await queue.enqueue(job, "t", payload=PAYLOAD)
    message = await waiting
    assert message is not None
    assert (message.job_id, message.payload) == (job, PAYLOAD)


async def test_an_expired_payload_leaves_the_message_without_one(
    queue: JobQueue, queue_settings: QueueSettings
) -> None:
    job = new_job()
    await queue.enqueue(job, "t", payload=PAYLOAD)
    client = redis.Redis.from_url(queue_settings.queue_url)
    try:
        await client.delete(f"{stream_key(queue_settings.queue_name)}:payload:{job}")  # as its TTL would
    finally:
        await client.aclose()
    message = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert message is not None
    assert (message.job_id, message.payload) == (job, b"")


async def test_a_dead_letter_drops_its_payload(queue: JobQueue, queue_settings: QueueSettings) -> None:
    job = new_job()
    await queue.enqueue(job, "t", payload=PAYLOAD)
    message = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert message is not None
    await queue.dead_letter(message, "poison")
    assert await queue.replay_dead_letters() == 1
    replayed = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert replayed is not None
    assert (replayed.job_id, replayed.payload) == (job, b"")
