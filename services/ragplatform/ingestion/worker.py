"""The ingestion worker loop: receive a job id, run the pipeline, record the outcome, ack.

At-least-once: a message is acked only after the job's outcome is stored. A worker that dies
mid-job loses nothing (the message comes back after the visibility timeout and the job runs
again; indexing is idempotent). Retryable failures are retried with exponential backoff up to
RAG_JOB_MAX_ATTEMPTS; after that, or for a document that can never be ingested, the job is
FAILED with a reason and the message is dead-lettered (retryable) or acked (rejected).
A worker runs up to `concurrency` jobs at once (RAG_WORKER_CONCURRENCY): one receive takes as
many messages as there are free slots, and each job runs and records its outcome on its own. A
job whose chunks are stored gives its slot to the next message while its success is recorded and
its message acked (round trips that hold no document and take no CPU to speak of); at most
`concurrency` such jobs more are in hand. One attempt's parse, embedding and indexing may take
at most RAG_JOB_ATTEMPT_TIMEOUT_SECONDS: a backend that hangs without a timeout of its own
costs that attempt, not the slot for good (its lease would be extended for as long as it hangs).
The jobs' calls to the store and the queue that arrive together (claims, successes, acks) share
round trips (`GroupCommit`): one statement or command for the jobs that reached that step
meanwhile, instead of one each. While jobs are in hand, the worker extends their messages'
visibility timeout every third of it (one command for them all), so a document that takes
longer than the timeout is not delivered to another worker while this one is alive.
On stop, a worker takes no new message; the jobs in hand finish, or are released if the grace
period runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from ragplatform.backends.blobs.base import BlobStore
from ragplatform.backends.embedders.base import Embedder
from ragplatform.backends.queue.base import JobQueue, QueueMessage
from ragplatform.backends.store.base import Store
from ragplatform.core.context import scoped, tenant_var
from ragplatform.core.metrics import (
    CHUNKS_INDEXED,
    JOB_SECONDS,
    JOB_STAGE_SECONDS,
    JOB_WAIT_SECONDS,
    JOBS_FINISHED,
    QUEUE_DEPTH,
    WORKER_CALL_JOBS,
)
from ragplatform.core.tracing import job_span
from ragplatform.domain.errors import DeadlineExceeded, DocumentRejected, InvalidArgument, NotFound, RagError
from ragplatform.domain.models import ChunkPoint, Document, Job, JobClaim, JobState
from ragplatform.ingestion.group_commit import GroupCommit
from ragplatform.ingestion.parse_sandbox import ParseDocument, parse_in_process
from ragplatform.ingestion.pipeline import ChunkingPolicy, IndexChunks, TrimChunks, ingest_document, trim_for

log = structlog.get_logger("ragplatform.worker")
T = TypeVar("T")
R = TypeVar("R")
# Where a job's time goes (ragplatform_ingestion_job_stage_seconds), one histogram child per stage.
_STAGES = {
    stage: JOB_STAGE_SECONDS.labels(stage) for stage in ("receive", "claim", "pipeline", "index", "finish", "ack")
}
# Jobs per shared store or queue call (ragplatform_ingestion_worker_call_jobs), per call.
_CALL_JOBS = {call: WORKER_CALL_JOBS.labels(call) for call in ("claim", "success", "ack")}
# Under load the loop never idles, so the depth gauge is refreshed at least this often anyway.
DEPTH_REPORT_SECONDS = 5.0
# Store and queue calls of concurrent jobs in flight at once per kind (claims, successes, acks):
# two, so that the calls arriving while one batch is on the wire start at once in a second one.
BATCHES_IN_FLIGHT = 2


class _DeletedWhileRunning(Exception):
    """The document (and so its job) was deleted while the job ran; its chunks were removed."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    attempt_timeout_seconds: float = 0.0  # 0: an attempt may run as long as it runs

    def delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1`: backoff, 2x, 4x ... capped at 10 minutes."""
        return float(min(600.0, self.backoff_seconds * (2 ** max(0, attempt - 1))))


@contextlib.asynccontextmanager
async def attempt_deadline(seconds: float) -> AsyncIterator[None]:
    """Stop the block after `seconds` (0: never) with `DeadlineExceeded`, a retryable failure.
    A `TimeoutError` raised inside the block by something else passes through as it is."""
    if seconds <= 0:
        yield
        return
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeadlineExceeded(
            f"the attempt ran past its limit of {seconds:g} s (RAG_JOB_ATTEMPT_TIMEOUT_SECONDS) and was stopped; "
            "it is retried like any failed attempt. If the document is just very large, raise the limit"
        ) from None


class IngestionWorker:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        blobs: BlobStore,
        embedder: Embedder,
        index: IndexChunks,
        trim: TrimChunks,
        chunking: ChunkingPolicy,
        retry: RetryPolicy,
        poll_seconds: float = 1.0,
        consumer: str = "",
        parse: ParseDocument = parse_in_process,
        concurrency: int = 1,
        lease_seconds: float | None = None,
    ) -> None:
        """`lease_seconds`: the queue's visibility timeout; while `run` runs, the messages of the
        jobs in hand are extended every third of it (None: never)."""
        self._store = store
        self._queue = queue
        self._blobs = blobs
        self._embedder = embedder
        self._index = index
        self._trim = trim
        self._chunking = chunking
        self._retry = retry
        self._poll = poll_seconds
        self._parse = parse
        self._concurrency = max(1, concurrency)
        self._running: dict[str, QueueMessage] = {}  # job id -> its message, for the jobs in hand
        # The jobs in hand whose chunks are stored: only recording the success and the ack are left.
        self._finishing: set[str] = set()
        self._slot_freed = asyncio.Event()
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self._depth_reported = 0.0
        self._heartbeat_seconds = max(0.05, lease_seconds / 3) if lease_seconds else None
        self._claims = _shared_calls(store.claim_jobs, "claim", self._concurrency)
        self._successes = _shared_calls(store.succeed_latest_jobs, "success", self._concurrency)
        self._acks = _shared_calls(self._ack_all, "ack", self._concurrency)

    async def run(self, stopping: asyncio.Event) -> None:
        """Process messages until `stopping` is set, up to `concurrency` jobs at once: each
        receive asks the queue for as many messages as there are free slots (one round trip),
        and each message is handled on its own (`handle`), so one bad document fails alone.
        On stop no new message is taken and the jobs in hand finish; if this task is cancelled
        (the grace period ran out), each job in hand releases its message first."""
        in_hand: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat()) if self._heartbeat_seconds else None
        try:
            while not stopping.is_set():
                # A job whose chunks are stored holds its slot no longer (see the module docstring).
                free = min(
                    self._concurrency - len(in_hand) + len(self._finishing), 2 * self._concurrency - len(in_hand)
                )
                if free <= 0:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                    continue
                try:
                    began = time.perf_counter()
                    messages = await self._queue.receive_many(self.consumer, free, self._poll)
                    if messages:
                        _STAGES["receive"].observe(time.perf_counter() - began)
                except RagError as exc:
                    log.warning("queue unavailable; retrying", error=exc.message)
                    await _sleep_unless(stopping, min(5.0, self._poll * 2))
                    continue
                if not messages or time.monotonic() - self._depth_reported > DEPTH_REPORT_SECONDS:
                    await self._report_depth()
                if not messages:
                    continue
                for message in messages:
                    if message.job_id in self._running:
                        # Its visibility timeout ran out while this worker still runs the job
                        # (a job longer than RAG_VISIBILITY_TIMEOUT_SECONDS): never run a job
                        # twice at once. The running handler's ack removes the message; should
                        # it release or lose it instead, the timeout brings it back later.
                        log.info("message for a job in hand; left pending", job_id=message.job_id)
                        continue
                    self._running[message.job_id] = message
                    task = asyncio.create_task(self._handle_logged(message, stopping))
                    in_hand.add(task)
                    task.add_done_callback(in_hand.discard)
                    task.add_done_callback(self._free_slot)
            if in_hand:
                await asyncio.wait(in_hand)
        finally:
            for task in in_hand:
                task.cancel()
            await asyncio.gather(*in_hand, return_exceptions=True)
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)

    async def _heartbeat(self) -> None:
        """Every third of the visibility timeout, extend the messages of the jobs in hand (one
        round trip for them all). A message this worker no longer holds is left alone: another
        worker took it over (this one was stalled past the timeout) and the job's claim decides."""
        assert self._heartbeat_seconds is not None
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            messages = list(self._running.values())
            if not messages:
                continue
            try:
                kept = await self._queue.extend(self.consumer, messages)
            except RagError as exc:
                log.warning("could not extend the jobs in hand; retrying at the next beat", error=exc.message)
                continue
            if lost := [m.job_id for m in messages if m.message_id not in kept and m.job_id in self._running]:
                log.warning("jobs in hand whose messages another worker holds now", job_ids=lost)

    async def _handle_logged(self, message: QueueMessage, stopping: asyncio.Event) -> None:
        try:
            await self.handle(message)
        except RagError as exc:
            # A backend failed while recording the outcome (e.g. the ack, with Redis down).
            # Nothing is lost: the unacked message comes back after the visibility timeout
            # and a finished job is then acked as a duplicate. The loop must live on; this
            # slot waits a little before taking another message.
            log.warning("could not record a job's outcome; it will be redelivered", error=exc.message)
            await _sleep_unless(stopping, min(5.0, self._poll * 2))
        finally:
            self._running.pop(message.job_id, None)
            self._finishing.discard(message.job_id)

    def _free_slot(self, *_: object) -> None:
        self._slot_freed.set()

    def _chunks_stored(self, job_id: str) -> None:
        """The job's document is indexed: its slot goes to the next message while its success is
        recorded and its message acked (the ack still waits for the durable success)."""
        if job_id in self._running:  # a job run through `handle` alone has no slot
            self._finishing.add(job_id)
            self._free_slot()

    async def handle(self, message: QueueMessage) -> None:
        """Process one message to an outcome. Raises `RagError` only when a backend fails while
        recording that outcome (the message is then redelivered later), and `CancelledError` on
        stop (the message is first released for another worker)."""
        with (
            job_span(message.traceparent, message.job_id, message.delivery_count),
            scoped({tenant_var: message.tenant_id}, {"job_id": message.job_id, "tenant": message.tenant_id}),
        ):
            try:
                await self._process(message)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(message, "the worker stopped; the job was released"))
                raise

    async def _process(self, message: QueueMessage) -> None:
        # Not an attempt when this delivery is past the limit and so were the attempts started.
        attempts_below = self._retry.max_attempts if message.delivery_count - 1 >= self._retry.max_attempts else None
        try:
            with _timed("claim"):
                claim = await self._claims.submit((message.job_id, attempts_below))
        except RagError as exc:
            # Not an attempt at the job: it was never started. Retry later, never give up on it.
            await self._release_later(message, f"the store is unavailable: {exc.message}")
            return
        if claim is None:
            log.info("job no longer exists (document deleted); dropping message")
            await self._ack(message)
            return
        job = claim.job  # as it was before this delivery
        if job.state == JobState.SUCCEEDED or (job.state == JobState.FAILED and message.delivery_count > 1):
            await self._ack(message)  # a duplicate delivery of a finished job
            return
        if self._exhausted(message.delivery_count - 1, job.attempts):
            # Every attempt started and none finished (e.g. a worker died in each).
            await self._give_up(message, job, job.error or "a worker stopped during every attempt")
            return
        if message.delivery_count == 1 and job.attempts == 0:
            JOB_WAIT_SECONDS.observe(max(0.0, (datetime.now(UTC) - job.created_at).total_seconds()))
        try:
            chunks = await self._timed_run(claim, message.payload)
        except _DeletedWhileRunning:
            await self._ack(message)
            log.info("document deleted while its job ran; the chunks it wrote were removed")
        except DocumentRejected as exc:
            await self._store.fail_job(job.job_id, exc.message)
            await self._ack(message)
            JOBS_FINISHED.labels("rejected").inc()
            log.info("job rejected", reason=exc.message)
        except (RagError, OSError) as exc:
            reason = exc.message if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
            await self._retry_or_give_up(message, job, reason)
        except Exception as exc:
            log.exception("job crashed")
            await self._retry_or_give_up(message, job, f"unexpected error ({type(exc).__name__}); see worker logs")
        else:
            # Its slot went to the next message once the chunks were stored (`_chunks_stored`);
            # `handle` still returns only once the message is acked.
            with _timed("ack"):
                await self._ack(message)
            JOBS_FINISHED.labels("succeeded").inc()
            CHUNKS_INDEXED.inc(chunks)
            log.info("job succeeded", chunks=chunks)

    async def _timed_run(self, claim: JobClaim, payload: bytes) -> int:
        """`_run_job`, its duration recorded by outcome: succeeded, rejected (the document can never
        be ingested) or error (a retry may help)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            chunks = await self._run_job(claim, payload)
            outcome = "succeeded"
            return chunks
        except DocumentRejected:
            outcome = "rejected"
            raise
        finally:
            JOB_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def _run_job(self, claim: JobClaim, payload: bytes) -> int:
        """Ingest the claimed job's document; `payload` is the document's bytes if they came with
        the message."""
        document = claim.document
        if document.latest_job_id and document.latest_job_id != claim.job.job_id:
            raise DocumentRejected(
                f"superseded: {document.filename} was uploaded again (job {document.latest_job_id} ingests it)"
            )
        # Not started: a finished job (a replayed delivery), ingested as it is.
        job = claim.started or claim.job
        data = payload if carries_document(payload, document) else await self._blobs.get(document.blob_key)

        async def progress(total: int, done: int) -> None:
            await self._store.set_job_progress(job.job_id, total, done)

        indexing = 0.0

        async def index(document: Document, points: list[ChunkPoint]) -> None:
            nonlocal indexing
            began = time.perf_counter()
            try:
                await self._index(document, points)
            finally:
                indexing += time.perf_counter() - began

        try:
            trim = trim_for(document, job, self._trim)
            began = time.perf_counter()
            async with attempt_deadline(self._retry.attempt_timeout_seconds):
                chunks = await ingest_document(
                    data, document, self._embedder, self._chunking, index, trim, progress, self._parse
                )
            _STAGES["index"].observe(indexing)
            _STAGES["pipeline"].observe(time.perf_counter() - began - indexing)
            self._chunks_stored(job.job_id)
            # One statement when the document was not uploaded again meanwhile (the usual case).
            with _timed("finish"):
                succeeded = await self._successes.submit((job.job_id, chunks))
            if succeeded is None:
                await self._restore_if_superseded(job)  # raises, unless the job is the latest after all
                await self._store.succeed_job(job.job_id, chunks)
        except NotFound:
            # The job vanished mid-run: its document was deleted. The delete removed the chunks
            # that existed then; the ones this job wrote since would be orphans that answers
            # could still cite, so remove them too.
            await self._trim(document, 0)
            raise _DeletedWhileRunning from None
        return chunks

    async def _restore_if_superseded(self, job: Job) -> None:
        """If the document was uploaded again while this job ran, index the newest version once
        more, then raise `DocumentRejected` ("superseded"). With several workers the newer job
        may have finished first, and this job's chunks (same point ids) overwrote its chunks;
        writing the newest version after ours leaves the index holding it, whatever the order."""
        current = await self._store.get_document(job.tenant_id, job.document_id)
        if current.latest_job_id in ("", job.job_id):
            return
        for _ in range(3):  # bounded: yet another upload meanwhile is indexed by its own job
            data = await self._blobs.get(current.blob_key)
            await ingest_document(
                data, current, self._embedder, self._chunking, self._index, self._trim, _no_progress, self._parse
            )
            latest = await self._store.get_document(job.tenant_id, job.document_id)
            if latest.latest_job_id == current.latest_job_id:
                break
            current = latest
        raise DocumentRejected(
            f"superseded: {current.filename} was uploaded again while this job ran "
            f"(job {current.latest_job_id} ingests it)"
        )

    async def _ack(self, message: QueueMessage) -> None:
        """Ack `message`, in one command with the other jobs' acks that came meanwhile."""
        await self._acks.submit(message)

    async def _ack_all(self, messages: list[QueueMessage]) -> list[None]:
        await self._queue.ack(*messages)
        return [None] * len(messages)

    def _exhausted(self, deliveries: int, attempts_started: int) -> bool:
        """Out of attempts only when both counts say so: deliveries in this round (a replay starts
        a new round) and attempts the store saw start (deliveries during a store outage, when no
        attempt could start, do not count)."""
        limit = self._retry.max_attempts
        return deliveries >= limit and attempts_started >= limit

    async def _retry_or_give_up(self, message: QueueMessage, job: Job, reason: str) -> None:
        # `job` is as read before this attempt started: this attempt is number job.attempts + 1.
        if self._exhausted(message.delivery_count, job.attempts + 1):
            await self._give_up(message, job, reason)
            return
        log.warning("job failed; will retry", reason=reason, attempt=message.delivery_count)
        with contextlib.suppress(RagError):
            await self._store.requeue_job(job.job_id, f"attempt {message.delivery_count} failed: {reason}")
        await self._release_later(message, reason)

    async def _release_later(self, message: QueueMessage, reason: str) -> None:
        delay = self._retry.delay(message.delivery_count)
        log.warning("job released for a retry", reason=reason, retry_in=delay)
        with contextlib.suppress(RagError):  # if even the queue is down, the visibility timeout brings it back
            await self._queue.release(message, delay)

    async def _give_up(self, message: QueueMessage, job: Job, reason: str) -> None:
        attempts = max(message.delivery_count, job.attempts)
        final = (
            f"gave up after {attempts} attempt(s): {reason}. Fix the cause, then replay it with "
            "`ragplatform jobs replay` or upload the file again"
        )
        try:
            await self._store.fail_job(message.job_id, final)
        except RagError as exc:
            # The FAILED state must be recorded before the message leaves the queue, or the job
            # would show QUEUED/RUNNING forever with nothing left to move it.
            await self._release_later(message, f"could not record the failure: {exc.message}")
            return
        await self._remove_partial_chunks(job)
        await self._queue.dead_letter(message, final)
        JOBS_FINISHED.labels("failed").inc()
        log.warning("job dead-lettered", reason=reason)

    async def _remove_partial_chunks(self, job: Job) -> None:
        """A document whose only version never finished ingesting is not searchable: the chunks an
        attempt indexed before it failed (some batches of a document stopped half-way) are removed,
        so answers cannot cite a FAILED document. Not when an earlier version succeeded (its
        chunks are what search has) or a newer upload's job now owns the document."""
        try:
            current = await self._store.get_document(job.tenant_id, job.document_id)
        except RagError:
            return  # deleted (its chunks went with it), or the store is down: left as they are
        if current.chunk_count > 0 or current.latest_job_id not in ("", job.job_id):
            return
        try:
            await self._trim(current, 0)
        except RagError as exc:
            log.warning("could not remove the chunks of a failed document", reason=exc.message)

    async def _release(self, message: QueueMessage, reason: str) -> None:
        with contextlib.suppress(RagError, InvalidArgument):
            await self._store.requeue_job(message.job_id, reason)
        await self._queue.release(message, 0.0)

    async def _report_depth(self) -> None:
        self._depth_reported = time.monotonic()
        with contextlib.suppress(RagError):
            QUEUE_DEPTH.set(await self._queue.depth())


def _shared_calls(run: Callable[[list[T]], Awaitable[Sequence[R]]], call: str, concurrency: int) -> GroupCommit[T, R]:
    """The worker's `call` (claim, success or ack) for all its jobs that reach it meanwhile."""
    return GroupCommit(
        run,
        name=f"the worker's {call} calls",
        max_in_flight=BATCHES_IN_FLIGHT,
        max_weight=concurrency,
        on_batch=_CALL_JOBS[call].observe,
    )


@contextlib.contextmanager
def _timed(stage: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        _STAGES[stage].observe(time.perf_counter() - began)


def carries_document(payload: bytes, document: Document) -> bool:
    """Whether a message's payload is this document's content (it hashes to the document's
    content hash), so the blob need not be read."""
    return bool(payload) and hashlib.sha256(payload).hexdigest() == document.content_hash


async def _no_progress(total: int, done: int) -> None:
    """Progress of a re-index is nobody's job's progress."""


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
