"""The queue-depth reader against a real Redis: lag + pending of the `workers` group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ragplatform_operator.queue_depth import QueueDepthReader, QueueDepthUnavailable, depth_from_groups
from tests.operator.behaviour.harness import free_port

STREAM = "ragplatform:queue:ingestion"


@pytest.fixture
async def reader() -> AsyncIterator[QueueDepthReader]:
    depth_reader = QueueDepthReader()
    yield depth_reader
    await depth_reader.aclose()


async def test_depth_is_lag_plus_pending(redis_url: str, reader: QueueDepthReader) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await reader.depth(redis_url, "ingestion") == 0, "no stream yet: nothing queued"
        for i in range(7):
            await client.xadd(STREAM, {"job": str(i)})
        assert await reader.depth(redis_url, "ingestion") == 7, "no group yet: every entry waits"
        await client.xgroup_create(STREAM, "workers", id="0")
        await client.xreadgroup("workers", "w1", {STREAM: ">"}, count=3)
        assert await reader.depth(redis_url, "ingestion") == 7, "4 undelivered + 3 in flight"
        answer: Any = await client.xreadgroup("workers", "w1", {STREAM: ">"}, count=2)
        ids = [entry_id for _, entries in answer for entry_id, _ in entries]
        await client.xack(STREAM, "workers", *ids)
        assert await reader.depth(redis_url, "ingestion") == 5, "2 acknowledged jobs are done"
        assert await reader.depth(redis_url, "other") == 0, "each queue name is its own stream"
    finally:
        await client.aclose()


def test_unknown_lag_counts_the_whole_stream() -> None:
    groups = [{"name": "workers", "pending": 2, "lag": None}, {"name": "audit", "pending": 50, "lag": 0}]
    assert depth_from_groups(groups, stream_length=9) == 11


async def test_unreachable_redis_says_what_to_check(reader: QueueDepthReader) -> None:
    url = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    with pytest.raises(QueueDepthUnavailable) as failure:
        await reader.depth(url, "ingestion")
    message = str(failure.value)
    assert "cannot read queue ragplatform:queue:ingestion" in message
    assert "Check that Redis is up" in message
    assert "secret-password" not in message, "the Redis password never reaches a status or an Event"


async def test_malformed_url_is_reported(reader: QueueDepthReader) -> None:
    with pytest.raises(QueueDepthUnavailable, match="redis://"):
        await reader.depth("http://not-redis", "ingestion")
