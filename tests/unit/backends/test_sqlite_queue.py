"""The embedded SQLite queue: the shared queue contract, plus what only this adapter promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.queue.sqlite import SqliteQueue
from ragplatform.core.settings import QueueSettings, load_settings
from tests.support.queue_contract import CONTRACT_VISIBILITY_TIMEOUT, EVENTUALLY_SECONDS, QueueContract


@pytest.fixture
def queue_settings(tmp_path: Path) -> QueueSettings:
    return load_settings(QueueSettings, data_dir=tmp_path, visibility_timeout_seconds=CONTRACT_VISIBILITY_TIMEOUT)


@pytest.fixture
async def queue(queue_settings: QueueSettings) -> AsyncIterator[SqliteQueue]:
    opened = await open_queue(queue_settings)
    assert isinstance(opened, SqliteQueue)
    yield opened
    await opened.close()


class TestSqliteQueueContract(QueueContract):
    pass


async def test_the_queue_lives_in_the_store_file(queue: SqliteQueue, queue_settings: QueueSettings) -> None:
    await queue.enqueue("job-1", "t")
    await queue.close()

    reopened = await open_queue(queue_settings)
    try:
        assert (Path(queue_settings.data_dir) / "ragplatform.db").is_file()
        message = await reopened.receive("w", wait_seconds=0)
        assert message is not None
        assert message.job_id == "job-1"
    finally:
        await reopened.close()


async def test_queue_names_are_separate_queues_in_one_file(queue_settings: QueueSettings) -> None:
    ingestion = await open_queue(queue_settings)
    other = await open_queue(queue_settings.model_copy(update={"queue_name": "other"}))
    try:
        await ingestion.enqueue("job-1", "t")
        assert await other.depth() == 0
        assert await other.receive("w", wait_seconds=0) is None
        assert await ingestion.depth() == 1
    finally:
        await ingestion.close()
        await other.close()


async def test_a_stale_holder_cannot_release_a_message_someone_else_received(queue: SqliteQueue) -> None:
    await queue.enqueue("job-1", "t")
    stale = await queue.receive("slow-worker", wait_seconds=EVENTUALLY_SECONDS)
    current = await queue.receive("fast-worker", wait_seconds=EVENTUALLY_SECONDS)  # after the timeout
    assert stale is not None
    assert current is not None
    assert current.delivery_count == 2

    await queue.release(stale)

    # The release was ignored: the message stays hidden while fast-worker holds it.
    assert await queue.receive("third-worker", wait_seconds=0) is None


async def test_dead_lettering_twice_keeps_one_letter(queue: SqliteQueue) -> None:
    await queue.enqueue("job-1", "t")
    message = await queue.receive("w", wait_seconds=EVENTUALLY_SECONDS)
    assert message is not None
    await queue.dead_letter(message, "first reason")
    await queue.dead_letter(message, "second reason")
    assert [reason for _, reason in await queue.dead_letters()] == ["first reason"]
