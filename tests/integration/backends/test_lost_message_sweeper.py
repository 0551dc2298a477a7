"""The lost-message sweeper on real backends: the embedded pair (SQLite store and queue) and the
production pair (PostgreSQL through PgBouncer, Redis Streams). A QUEUED job whose message is gone,
and a RUNNING one whose worker died after its message was lost, get exactly one new message each,
even with several sweepers at once; a job whose message still waits or is in flight, a fresh job
and a finished job are left alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.store.base import Store
from ragplatform.core.settings import QueueSettings, load_settings
from ragplatform.ingestion.sweeper import LostMessageSweeper
from tests.support.opened_backends import opened_backends
from tests.support.servers import PostgresDatabase, RedisServer
from tests.support.store_contract import new_tenant, upload

LOST_AFTER = 60.0


@pytest.fixture(params=["sqlite", "postgres+redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> QueueSettings:
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        return load_settings(QueueSettings, data_dir=tmp_path, store_url="", queue_url="", queue_name=name)
    postgres: PostgresDatabase = request.getfixturevalue("postgres_database")
    redis: RedisServer = request.getfixturevalue("redis_server")
    return load_settings(QueueSettings, store_url=postgres.bouncer_url, queue_url=redis.url, queue_name=name)


@pytest.fixture
async def backends(settings: QueueSettings) -> AsyncIterator[tuple[Store, JobQueue]]:
    async with opened_backends(settings) as opened:
        yield opened


def sweeper(store: Store, queue: JobQueue, minutes_later: float) -> LostMessageSweeper:
    """A sweeper whose clock runs `minutes_later` ahead of now."""
    return LostMessageSweeper(
        store, queue, LOST_AFTER, 1.0, clock=lambda: datetime.now(UTC) + timedelta(minutes=minutes_later)
    )


async def test_a_job_whose_message_was_lost_is_enqueued_again_once(backends: tuple[Store, JobQueue]) -> None:
    store, queue = backends
    tenant = new_tenant()
    lost = (await store.record_upload(upload(tenant, "lost.md", "lost"))).job  # never enqueued
    # RUNNING, no message: its worker died after the message was lost.
    stranded = await store.start_job((await store.record_upload(upload(tenant, "stranded.md", "s"))).job.job_id)
    working = (await store.record_upload(upload(tenant, "working.md", "w"))).job
    await queue.enqueue(working.job_id, tenant)
    in_hand = await queue.receive("w", wait_seconds=5)  # a live worker holds its message
    assert in_hand is not None
    assert in_hand.job_id == working.job_id
    await store.start_job(working.job_id)
    waiting = (await store.record_upload(upload(tenant, "waiting.md", "waiting"))).job
    await queue.enqueue(waiting.job_id, tenant)
    done = (await store.record_upload(upload(tenant, "done.md", "done"))).job
    await store.start_job(done.job_id)
    await store.succeed_job(done.job_id, 1)

    # Too soon: nothing is old enough to count as lost.
    assert await sweeper(store, queue, 0).sweep_once() == []

    # Later, three workers sweep at once: one new message for each lost job, none for the others.
    results = await asyncio.gather(*(sweeper(store, queue, 5).sweep_once() for _ in range(3)))
    assert sorted(job for result in results for job in result) == sorted([lost.job_id, stranded.job_id])
    assert await queue.job_ids_with_messages() == {lost.job_id, stranded.job_id, waiting.job_id, working.job_id}
    received = [await queue.receive("w", wait_seconds=5) for _ in range(3)]
    assert {m.job_id for m in received if m is not None} == {lost.job_id, stranded.job_id, waiting.job_id}
    assert await queue.receive("w", wait_seconds=0.2) is None

    # Its message is in flight now: the next sweep leaves it alone.
    assert await sweeper(store, queue, 10).sweep_once() == []


async def test_the_sweeper_loop_runs_until_stopped(backends: tuple[Store, JobQueue]) -> None:
    store, queue = backends
    lost = (await store.record_upload(upload(new_tenant(), "lost.md", "lost"))).job
    stopping = asyncio.Event()
    task = asyncio.create_task(sweeper(store, queue, 5).run(stopping))
    message = await queue.receive("w", wait_seconds=10)
    stopping.set()
    await asyncio.wait_for(task, timeout=5)
    assert message is not None
    assert message.job_id == lost.job_id
