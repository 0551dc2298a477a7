"""The production backends together, as a worker and an SRE use them: PostgreSQL through
PgBouncer for job state, Redis Streams for delivery. A poison job is retried, dead-lettered
with its reason, marked FAILED, and brought back by `ragplatform jobs replay` (configured only
through RAG_ environment variables)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.store.base import Store
from ragplatform.core.settings import QueueSettings, load_settings
from ragplatform.domain.models import JobState
from tests.support.opened_backends import opened_backends
from tests.support.servers import PostgresDatabase, RedisServer
from tests.support.store_contract import new_tenant, upload

MAX_ATTEMPTS = 3


@pytest.fixture
def settings(postgres_database: PostgresDatabase, redis_server: RedisServer) -> QueueSettings:
    return load_settings(
        QueueSettings,
        store_url=postgres_database.bouncer_url,
        queue_url=redis_server.url,
        queue_name=f"together-{uuid.uuid4().hex[:8]}",
        visibility_timeout_seconds=0.5,
        job_max_attempts=MAX_ATTEMPTS,
    )


@pytest.fixture
async def backends(settings: QueueSettings) -> AsyncIterator[tuple[Store, JobQueue]]:
    async with opened_backends(settings) as opened:
        yield opened


async def test_a_poison_job_is_dead_lettered_failed_and_replayed(
    backends: tuple[Store, JobQueue], settings: QueueSettings
) -> None:
    store, queue = backends
    tenant = new_tenant()
    outcome = await store.record_upload(upload(tenant, "poison.pdf", "poison"))
    job_id = outcome.job.job_id
    await queue.enqueue(job_id, tenant)

    # A worker that crashes on the document: it never acks, so each visibility timeout hands
    # the message to the next attempt, until the attempts run out.
    while True:
        message = await queue.receive("worker", wait_seconds=10)
        assert message is not None
        job = await store.start_job(message.job_id)
        if message.delivery_count >= MAX_ATTEMPTS:
            reason = f"failed {message.delivery_count} times: the PDF parser crashed; fix the file and replay"
            await store.fail_job(job_id, reason)
            await queue.dead_letter(message, reason)
            break
    assert job.attempts == MAX_ATTEMPTS
    assert (await store.get_job(tenant, job_id)).state == JobState.FAILED
    assert [(m.job_id, r) for m, r in await queue.dead_letters()] == [(job_id, reason)]
    assert await queue.depth() == 0

    env = {**os.environ, **{f"RAG_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ragplatform",
        "jobs",
        "replay",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert "replayed 1 job" in output.decode()

    assert (await store.get_job(tenant, job_id)).state == JobState.QUEUED
    assert await queue.dead_letters() == []
    again = await queue.receive("worker", wait_seconds=10)
    assert again is not None
    assert again.job_id == job_id
    assert again.delivery_count == 1
    await store.start_job(job_id)
    await store.succeed_job(job_id, chunk_count=2)
    await queue.ack(again)
    assert (await store.get_job(tenant, job_id)).state == JobState.SUCCEEDED
    assert await queue.depth() == 0
