"""The ingestion worker's rules, driven one message at a time on the real embedded backends
(SQLite store and queue, local blobs, the qdrant-edge vector store, the hashing embedder).

Uploads go through the real `IngestionService`. The one test double is `ControlledIndex`: it
writes to the real vector store, but a test can make it fail (a retrieval outage) or hold it
mid-call (a job in progress when the worker stops), which no real component does on demand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ragplatform.backends.blobs.base import BlobStore
from ragplatform.backends.blobs.factory import open_blob_store
from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.queue.base import JobQueue, QueueMessage
from ragplatform.backends.queue.factory import open_queue
from ragplatform.backends.queue.sqlite import SqliteQueue
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.factory import open_store
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import QueueSettings, WorkerSettings, load_settings
from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import ChunkPoint, Document, Job, JobState, SearchQuery, UploadOutcome
from ragplatform.ingestion.pipeline import ChunkingPolicy
from ragplatform.ingestion.service import IngestionService, UploadHeader
from ragplatform.ingestion.worker import IngestionWorker, RetryPolicy, attempt_deadline, carries_document

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "docs"
DIMENSION = 64
TEXT = b"The Zephyr-9 pump delivers 42 bar at most.\n\nIts impeller is made of bronze.\n\nIt weighs 18 kg."


@dataclass
class ControlledIndex:
    """Test double around the real vector store: fails the next `fail_times` calls (or every call
    after the first `fail_after`) with `Unavailable`, and, when `hold` is set, waits on it (after
    signalling `entered`)."""

    vectors: EdgeVectorStore
    fail_times: int = 0
    fail_after: int | None = None  # calls that succeed before every later one fails
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def __call__(self, document: Document, points: list[ChunkPoint]) -> None:
        self.calls += 1
        self.entered.set()
        if self.fail_times > 0 or (self.fail_after is not None and self.calls > self.fail_after):
            self.fail_times = max(0, self.fail_times - 1)
            raise Unavailable("the retrieval service is unavailable (connection refused); retry shortly")
        if self.hold is not None:
            await self.hold.wait()
        await self.vectors.upsert(points)


@dataclass
class Rig:
    store: Store
    queue: JobQueue
    blobs: BlobStore
    vectors: EdgeVectorStore
    index: ControlledIndex
    uploads: IngestionService

    def worker(
        self,
        max_attempts: int = 3,
        backoff_seconds: float = 0.0,
        concurrency: int = 1,
        queue: JobQueue | None = None,
        attempt_timeout_seconds: float = 0.0,
    ) -> IngestionWorker:
        async def trim(document: Document, keep_below: int) -> None:
            await self.vectors.delete_document(document.tenant_id, document.document_id, keep_below)

        return IngestionWorker(
            self.store,
            queue or self.queue,
            self.blobs,
            HashingEmbedder(DIMENSION),
            self.index,
            trim,
            ChunkingPolicy(chunk_tokens=12, overlap_tokens=0, embed_batch_size=2),
            RetryPolicy(max_attempts, backoff_seconds, attempt_timeout_seconds),
            poll_seconds=0.05,
            concurrency=concurrency,
        )

    async def upload(self, filename: str, data: bytes) -> UploadOutcome:
        async def pieces() -> AsyncIterator[bytes]:
            yield data

        return await self.uploads.upload(UploadHeader("acme", filename, "", {}), pieces())

    async def receive(self, wait: float = 5.0) -> QueueMessage:
        message = await self.queue.receive("test", wait)
        assert message is not None, "no message arrived"
        return message

    async def job(self, outcome: UploadOutcome) -> Job:
        return await self.store.get_job("acme", outcome.job.job_id)

    async def chunks(self, document_id: str) -> int:
        return await self.vectors.count("acme") if document_id else 0


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = load_settings(
        WorkerSettings,
        data_dir=tmp_path,
        embedder="hashing",
        embedding_dimension=DIMENSION,
        store_url="",
        queue_url="",
        blob_url="",
    )
    store = await open_store(settings)
    queue = await open_queue(settings)
    blobs = await open_blob_store(settings)
    vectors = EdgeVectorStore(tmp_path / "vectors")
    await vectors.open(DIMENSION)

    async def delete_chunks(tenant_id: str, document_id: str) -> None:
        await vectors.delete_document(tenant_id, document_id)

    try:
        yield Rig(
            store,
            queue,
            blobs,
            vectors,
            ControlledIndex(vectors),
            IngestionService(store, blobs, queue, delete_chunks, 1024 * 1024),
        )
    finally:
        await vectors.close()
        await blobs.close()
        await queue.close()
        await store.close()


def test_retry_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_seconds=5.0)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert policy.delay(30) == 600.0


async def test_a_job_succeeds_with_its_chunks_indexed_and_the_message_acked(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    await rig.worker().handle(await rig.receive())
    job = await rig.job(outcome)
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 1
    assert job.chunks_total == job.chunks_done == await rig.vectors.count("acme") > 1
    document = await rig.store.get_document("acme", outcome.document.document_id)
    assert document.chunk_count == job.chunks_total
    assert await rig.queue.depth() == 0


async def test_a_transient_failure_is_retried_after_a_backoff(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.fail_times = 1
    worker = rig.worker(max_attempts=3, backoff_seconds=1.0)
    await worker.handle(await rig.receive())

    job = await rig.job(outcome)
    assert job.state == JobState.QUEUED
    assert "attempt 1 failed" in job.error
    assert "retrieval service is unavailable" in job.error
    assert await rig.queue.receive("test", 0) is None  # held back for the backoff, not redelivered at once
    again = await rig.receive(wait=10)
    assert again.delivery_count == 2
    await worker.handle(again)
    job = await rig.job(outcome)
    assert job.state == JobState.SUCCEEDED
    assert job.error == ""
    assert job.attempts == 2
    assert await rig.vectors.count("acme") == job.chunks_total  # the retry duplicated nothing


async def test_a_job_that_keeps_failing_is_dead_lettered_with_the_reason(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.fail_times = 100
    worker = rig.worker(max_attempts=2)
    for _ in range(2):
        await worker.handle(await rig.receive())
    job = await rig.job(outcome)
    assert job.state == JobState.FAILED
    assert job.error.startswith("gave up after 2 attempt(s): the retrieval service is unavailable")
    assert "ragplatform jobs replay" in job.error
    dead = await rig.queue.dead_letters()
    assert [(m.job_id, reason) for m, reason in dead] == [(outcome.job.job_id, job.error)]
    assert await rig.queue.depth() == 0
    assert rig.index.calls == 2

    # the remedy the message names: fix the cause, requeue and replay -> the job completes
    rig.index.fail_times = 0
    await rig.store.requeue_job(outcome.job.job_id, "replayed from the dead-letter queue")
    assert await rig.queue.replay_dead_letters() == 1
    await worker.handle(await rig.receive())
    assert (await rig.job(outcome)).state == JobState.SUCCEEDED


async def test_an_attempt_that_hangs_is_stopped_at_its_limit_retried_and_then_dead_lettered(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.hold = asyncio.Event()  # an index call that never returns: a backend hanging with no timeout of its own
    worker = rig.worker(max_attempts=2, attempt_timeout_seconds=0.3)

    await asyncio.wait_for(worker.handle(await rig.receive()), 10)
    job = await rig.job(outcome)
    assert job.state == JobState.QUEUED
    assert "attempt 1 failed: the attempt ran past its limit of 0.3 s (RAG_JOB_ATTEMPT_TIMEOUT_SECONDS)" in job.error

    await asyncio.wait_for(worker.handle(await rig.receive()), 10)
    job = await rig.job(outcome)
    assert job.state == JobState.FAILED
    assert job.error.startswith("gave up after 2 attempt(s): the attempt ran past its limit of 0.3 s")
    assert len(await rig.queue.dead_letters()) == 1
    assert rig.index.calls == 2

    # Nothing is lost: once the backend answers again, the replayed job completes.
    rig.index.hold.set()
    await rig.store.requeue_job(outcome.job.job_id, "replayed from the dead-letter queue")
    assert await rig.queue.replay_dead_letters() == 1
    await worker.handle(await rig.receive())
    job = await rig.job(outcome)
    assert job.state == JobState.SUCCEEDED
    assert await rig.vectors.count("acme") == job.chunks_total


async def test_a_new_document_that_fails_half_way_leaves_no_chunk_to_cite(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.fail_after = 1  # the first batch is indexed, then retrieval goes away
    await rig.worker(max_attempts=1).handle(await rig.receive())
    job = await rig.job(outcome)
    assert job.state == JobState.FAILED
    assert rig.index.calls == 2
    assert await rig.vectors.count("acme") == 0  # the first batch's chunks are gone too


async def test_a_failed_new_version_leaves_the_last_good_version_searchable(rig: Rig) -> None:
    first = await rig.upload("zephyr.txt", TEXT)
    worker = rig.worker(max_attempts=1)
    await worker.handle(await rig.receive())
    indexed = (await rig.job(first)).chunks_total
    await rig.upload("zephyr.txt", TEXT + b"\n\nIt was painted blue in 2024.")
    rig.index.fail_times = 100
    await worker.handle(await rig.receive())
    assert await rig.vectors.count("acme") == indexed  # not removed: search still has a version


async def test_a_timeout_raised_inside_an_attempt_is_not_taken_for_its_deadline() -> None:
    with pytest.raises(TimeoutError, match="a library's own"):
        async with attempt_deadline(30):
            raise TimeoutError("a library's own timeout")
    async with attempt_deadline(0):  # no limit
        await asyncio.sleep(0.01)


async def test_a_message_delivered_past_the_limit_is_dead_lettered_without_running(rig: Rig) -> None:
    # e.g. a document that crashes the worker process every time: each crash started an attempt
    # (the store counted it) and redelivered the message
    outcome = await rig.upload("zephyr.txt", TEXT)
    for _ in range(3):
        await rig.store.start_job(outcome.job.job_id)
    message = dataclasses.replace(await rig.receive(), delivery_count=4)
    await rig.worker(max_attempts=3).handle(message)
    job = await rig.job(outcome)
    assert job.state == JobState.FAILED
    assert "gave up after 4 attempt(s)" in job.error
    assert rig.index.calls == 0
    assert len(await rig.queue.dead_letters()) == 1


async def test_deliveries_while_no_attempt_could_start_do_not_use_up_the_attempts(rig: Rig) -> None:
    # e.g. the store was down for the first deliveries: the message came back, the job never started
    outcome = await rig.upload("zephyr.txt", TEXT)
    message = dataclasses.replace(await rig.receive(), delivery_count=4)
    await rig.worker(max_attempts=3).handle(message)
    job = await rig.job(outcome)
    assert job.state == JobState.SUCCEEDED
    assert await rig.queue.dead_letters() == []


async def test_a_rejected_document_fails_at_once_without_retry(rig: Rig) -> None:
    outcome = await rig.upload("corrupt.pdf", (DOCS / "invalid" / "corrupt.pdf").read_bytes())
    await rig.worker(max_attempts=3).handle(await rig.receive())
    job = await rig.job(outcome)
    assert job.state == JobState.FAILED
    assert job.attempts == 1
    assert "corrupt.pdf" in job.error
    assert "PDF" in job.error
    assert "gave up" not in job.error  # not a retry that ran out: the file itself is the problem
    assert await rig.queue.depth() == 0
    assert await rig.queue.dead_letters() == []
    assert rig.index.calls == 0


async def test_a_superseded_job_is_failed_and_the_new_version_is_indexed(rig: Rig) -> None:
    old = await rig.upload("zephyr.txt", TEXT)
    new = await rig.upload("zephyr.txt", b"The Zephyr-10 replaces the Zephyr-9.")
    assert new.document.document_id == old.document.document_id
    worker = rig.worker()
    first = await rig.receive()
    assert first.job_id == old.job.job_id
    await worker.handle(first)
    stale = await rig.job(old)
    assert stale.state == JobState.FAILED
    assert stale.error.startswith("superseded")
    assert new.job.job_id in stale.error
    await worker.handle(await rig.receive())
    assert (await rig.job(new)).state == JobState.SUCCEEDED
    assert await rig.vectors.count("acme") == 1
    assert rig.index.calls == 1  # the old version was never indexed


async def test_a_duplicate_delivery_of_a_succeeded_job_is_acked_without_running_again(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    worker = rig.worker()
    await worker.handle(await rig.receive())
    done = await rig.job(outcome)
    assert done.state == JobState.SUCCEEDED
    calls = rig.index.calls
    # the same job delivered again (at-least-once: e.g. the first ack was lost)
    await rig.queue.enqueue(outcome.job.job_id, "acme")
    await worker.handle(await rig.receive())
    assert rig.index.calls == calls
    after = await rig.job(outcome)
    assert (after.state, after.attempts, after.updated_at) == (done.state, done.attempts, done.updated_at)
    assert await rig.queue.depth() == 0


async def test_a_message_for_a_deleted_document_is_dropped(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    await rig.uploads.delete_document("acme", outcome.document.document_id)
    await rig.worker().handle(await rig.receive())
    assert await rig.queue.depth() == 0
    assert await rig.queue.dead_letters() == []
    assert rig.index.calls == 0


async def test_stopping_mid_job_releases_the_message_for_another_worker(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.hold = asyncio.Event()
    stopping = asyncio.Event()
    first = rig.worker()
    running = asyncio.create_task(first.run(stopping))
    await asyncio.wait_for(rig.index.entered.wait(), 10)
    # what RunningService.stop does when the grace period runs out: stop, then cancel
    stopping.set()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    job = await rig.job(outcome)
    assert job.state == JobState.QUEUED
    assert "the worker stopped" in job.error
    rig.index.hold = None
    message = await rig.receive(wait=0)  # released at once, not after the visibility timeout
    assert message.job_id == outcome.job.job_id
    assert message.delivery_count == 2
    await rig.worker().handle(message)
    job = await rig.job(outcome)
    assert job.state == JobState.SUCCEEDED
    assert await rig.vectors.count("acme") == job.chunks_total


async def test_stopping_lets_the_job_in_hand_finish_and_takes_no_new_one(rig: Rig) -> None:
    in_hand = await rig.upload("zephyr.txt", TEXT)
    waiting = await rig.upload("ferry.txt", b"The first ferry leaves at 06:10.")
    rig.index.hold = asyncio.Event()
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.worker().run(stopping))
    await asyncio.wait_for(rig.index.entered.wait(), 10)
    stopping.set()
    rig.index.hold.set()
    await asyncio.wait_for(running, 10)
    assert (await rig.job(in_hand)).state == JobState.SUCCEEDED
    assert (await rig.job(waiting)).state == JobState.QUEUED
    assert await rig.queue.depth() == 1


async def test_a_document_deleted_while_its_job_runs_leaves_no_chunks_behind(rig: Rig) -> None:
    outcome = await rig.upload("zephyr.txt", TEXT)
    rig.index.hold = asyncio.Event()
    worker = rig.worker()
    handling = asyncio.create_task(worker.handle(await rig.receive()))
    await asyncio.wait_for(rig.index.entered.wait(), 10)
    await rig.uploads.delete_document("acme", outcome.document.document_id)
    rig.index.hold.set()  # the worker now writes chunks of a document that no longer exists
    await asyncio.wait_for(handling, 10)
    while (message := await rig.queue.receive("test", 0.5)) is not None:
        await worker.handle(message)
    assert await rig.vectors.count("acme") == 0
    assert await rig.queue.depth() == 0


async def test_two_workers_share_the_queue_without_running_a_job_twice(rig: Rig) -> None:
    outcomes = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(6)]
    stopping = asyncio.Event()
    workers = [asyncio.create_task(rig.worker().run(stopping)) for _ in range(2)]
    try:
        for _ in range(200):
            jobs = [await rig.job(o) for o in outcomes]
            if all(j.state == JobState.SUCCEEDED for j in jobs):
                break
            await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.gather(*workers)
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 6
    assert [j.attempts for j in jobs] == [1] * 6
    assert rig.index.calls == 6
    assert await rig.vectors.count("acme") == 6


async def test_an_older_version_finishing_last_does_not_overwrite_the_newer_one(rig: Rig) -> None:
    # Two workers: the job for version 1 is slow; version 2 is uploaded, indexed and done while
    # version 1 is still being written. The index must end up holding version 2 only.
    v1 = b"\n\n".join(f"Old paragraph {i} about the Zephyr-9 pump.".encode() for i in range(4))
    v2 = b"\n\n".join(f"New paragraph {i} about the Zephyr-10 pump.".encode() for i in range(4))
    old = await rig.upload("zephyr.txt", v1)
    rig.index.hold = asyncio.Event()
    slow = asyncio.create_task(rig.worker().handle(await rig.receive()))
    await asyncio.wait_for(rig.index.entered.wait(), 10)
    new = await rig.upload("zephyr.txt", v2)
    held, rig.index.hold = rig.index.hold, None
    fast = rig.worker()
    await fast.handle(await rig.receive())
    assert (await rig.job(new)).state == JobState.SUCCEEDED
    held.set()
    await asyncio.wait_for(slow, 10)
    while (message := await rig.queue.receive("test", 0.5)) is not None:
        await fast.handle(message)
    hits = await rig.vectors.search(
        SearchQuery(tenant_id="acme", vector=await HashingEmbedder(DIMENSION).embed_query("pump"), top_k=50)
    )
    assert hits
    assert all(h.text.startswith("New paragraph") for h in hits), [h.text for h in hits]
    assert (await rig.job(new)).state == JobState.SUCCEEDED
    stale = await rig.job(old)
    assert stale.state == JobState.FAILED
    assert stale.error.startswith("superseded")


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


async def test_a_concurrent_worker_runs_up_to_its_concurrency_at_once(rig: Rig) -> None:
    outcomes = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(4)]
    rig.index.hold = asyncio.Event()
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.worker(concurrency=3).run(stopping))

    async def three_in_hand() -> bool:
        return rig.index.calls == 3

    await until(three_in_hand)
    await asyncio.sleep(0.3)
    assert rig.index.calls == 3  # the fourth waits for a free slot
    rig.index.hold.set()

    async def all_done() -> bool:
        return [(await rig.job(o)).state for o in outcomes] == [JobState.SUCCEEDED] * len(outcomes)

    await until(all_done)
    stopping.set()
    await asyncio.wait_for(running, 10)
    assert rig.index.calls == 4
    assert await rig.queue.depth() == 0


class HeldAcks(SqliteQueue):
    """Test double: the real SQLite queue, whose acks wait until `acks_go` is set (a queue slow
    to answer), which no real queue does on demand."""

    def __init__(self, settings: QueueSettings) -> None:
        super().__init__(settings)
        self.acks_go = asyncio.Event()

    async def ack(self, *messages: QueueMessage) -> None:
        await self.acks_go.wait()
        await super().ack(*messages)


async def test_a_finished_job_frees_its_slot_while_its_ack_is_on_its_way(rig: Rig, tmp_path: Path) -> None:
    held = HeldAcks(load_settings(WorkerSettings, data_dir=tmp_path, queue_url=""))
    await held.open()
    try:
        outcomes = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(2)]
        stopping = asyncio.Event()
        running = asyncio.create_task(rig.worker(concurrency=1, queue=held).run(stopping))

        async def both_succeeded() -> bool:  # one slot: the second ran while the first's ack waited
            return [(await rig.job(o)).state for o in outcomes] == [JobState.SUCCEEDED] * 2

        await until(both_succeeded)
        assert await rig.queue.depth() == 2  # neither acked yet
        held.acks_go.set()
        stopping.set()
        await asyncio.wait_for(running, 10)
        assert await rig.queue.depth() == 0
    finally:
        await held.close()


async def test_a_job_whose_chunks_are_stored_frees_its_slot_while_its_success_is_recorded(rig: Rig) -> None:
    outcomes = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(4)]
    successes_go = asyncio.Event()
    succeed = rig.store.succeed_latest_jobs

    async def held_successes(jobs: Sequence[tuple[str, int]]) -> list[Job | None]:
        await successes_go.wait()  # a store slow to record successes, which no real store is on demand
        return await succeed(jobs)

    rig.store.succeed_latest_jobs = held_successes  # type: ignore[method-assign]
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.worker(concurrency=1).run(stopping))

    async def two_indexed() -> bool:  # one slot: the second document ran while the first's success waited
        return rig.index.calls == 2

    await until(two_indexed)
    await asyncio.sleep(0.3)
    assert rig.index.calls == 2  # bounded: at most `concurrency` jobs more wait to finish
    assert [(await rig.job(o)).state for o in outcomes[:2]] == [JobState.RUNNING] * 2
    assert await rig.queue.depth() == 4  # nothing acked before its success is stored
    successes_go.set()

    async def all_succeeded() -> bool:
        return [(await rig.job(o)).state for o in outcomes] == [JobState.SUCCEEDED] * 4

    await until(all_succeeded)
    stopping.set()
    await asyncio.wait_for(running, 10)
    assert await rig.queue.depth() == 0


async def test_one_bad_document_among_concurrent_jobs_fails_alone(rig: Rig) -> None:
    good = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(3)]
    bad = await rig.upload("corrupt.pdf", (DOCS / "invalid" / "corrupt.pdf").read_bytes())
    more = await rig.upload("doc-3.txt", b"Document 3 is about the ferry.")
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.worker(concurrency=8).run(stopping))

    async def all_finished() -> bool:
        states = [(await rig.job(o)).state for o in [*good, bad, more]]
        return all(state in (JobState.SUCCEEDED, JobState.FAILED) for state in states)

    await until(all_finished)
    stopping.set()
    await asyncio.wait_for(running, 10)
    assert [(await rig.job(o)).state for o in [*good, more]] == [JobState.SUCCEEDED] * 4
    failed = await rig.job(bad)
    assert failed.state == JobState.FAILED
    assert "corrupt.pdf" in failed.error
    assert await rig.vectors.count("acme") == 4
    assert await rig.queue.depth() == 0


async def test_stopping_a_concurrent_worker_releases_every_job_in_hand(rig: Rig) -> None:
    outcomes = [await rig.upload(f"doc-{i}.txt", f"Document {i} is about pump {i}.".encode()) for i in range(3)]
    rig.index.hold = asyncio.Event()
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.worker(concurrency=3).run(stopping))

    async def three_in_hand() -> bool:
        return rig.index.calls == 3

    await until(three_in_hand)
    stopping.set()
    running.cancel()  # the grace period ran out
    with pytest.raises(asyncio.CancelledError):
        await running
    assert [(await rig.job(o)).state for o in outcomes] == [JobState.QUEUED] * 3
    released = await rig.queue.receive_many("test", 10, wait_seconds=0)  # at once, not after a timeout
    assert sorted(m.job_id for m in released) == sorted(o.job.job_id for o in outcomes)
    assert all(m.delivery_count == 2 for m in released)


async def test_a_job_outliving_its_visibility_timeout_is_not_run_twice_by_one_worker(rig: Rig, tmp_path: Path) -> None:
    # The same queue file, read with a visibility timeout far shorter than the job.
    settings = load_settings(WorkerSettings, data_dir=tmp_path, queue_url="", visibility_timeout_seconds=0.1)
    short_visibility = await open_queue(settings)
    try:
        outcome = await rig.upload("zephyr.txt", TEXT)
        rig.index.hold = asyncio.Event()
        stopping = asyncio.Event()
        running = asyncio.create_task(rig.worker(concurrency=4, queue=short_visibility).run(stopping))
        await asyncio.wait_for(rig.index.entered.wait(), 10)
        await asyncio.sleep(1.0)  # the message comes back to this worker again and again meanwhile
        assert rig.index.calls == 1
        rig.index.hold.set()

        async def succeeded() -> bool:
            return (await rig.job(outcome)).state == JobState.SUCCEEDED

        await until(succeeded)
        stopping.set()
        await asyncio.wait_for(running, 10)
        job = await rig.job(outcome)
        assert job.attempts == 1
        assert await rig.queue.depth() == 0
    finally:
        await short_visibility.close()


def test_a_payload_carries_the_document_only_when_it_hashes_to_its_content_hash() -> None:
    document = Document(
        document_id="d",
        tenant_id="acme",
        filename="zephyr.txt",
        content_type="text/plain",
        content_hash=hashlib.sha256(TEXT).hexdigest(),
        size_bytes=len(TEXT),
        blob_key="k",
        metadata={},
        chunk_count=0,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    assert carries_document(TEXT, document)
    assert not carries_document(b"", document)
    assert not carries_document(TEXT + b" ", document)  # another version's bytes: read the blob
