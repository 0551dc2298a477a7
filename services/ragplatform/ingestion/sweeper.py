"""The lost-message sweeper: a job stays QUEUED forever if its queue message is lost (Redis
restarted without persistence, a message deleted by hand, an enqueue whose reply was lost), and
RUNNING forever if its worker died after the message was lost (a redelivery needs the message).
Every `interval` the sweeper looks for QUEUED or RUNNING jobs untouched for `lost_after` and
without any message in the queue (waiting, in flight or delayed), and enqueues them again; the
worker that receives a RUNNING job's new message counts it as another attempt, as it does a
redelivery after a crash.

Several workers run it at once: a job is re-enqueued only by the sweeper that wins
`touch_stale_job` (a conditional update of the job's `updated_at`), so each lost job gets one
new message. `lost_after` must exceed the time between an upload recording its job and enqueuing
its message (milliseconds); a job waiting in a long backlog, or being worked on, still has its
message (a worker acks only after the job's final state is stored), so it is left alone however
old it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.store.base import Store
from ragplatform.domain.errors import RagError

log = structlog.get_logger("ragplatform.sweeper")

SWEEP_BATCH = 500


class LostMessageSweeper:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        lost_after_seconds: float,
        interval_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._queue = queue
        self._lost_after = timedelta(seconds=lost_after_seconds)
        self._interval = interval_seconds
        self._clock = clock

    async def sweep_once(self) -> list[str]:
        """Re-enqueue the unfinished jobs whose message is lost; return their ids."""
        stale = await self._store.stale_unfinished_jobs(self._clock() - self._lost_after, SWEEP_BATCH)
        if not stale:
            return []
        present = await self._queue.job_ids_with_messages()
        requeued = []
        for job in stale:
            if job.job_id in present or not await self._store.touch_stale_job(job.job_id, job.updated_at):
                continue
            await self._queue.enqueue(job.job_id, job.tenant_id)
            log.warning(
                "re-enqueued a job whose queue message was lost",
                job_id=job.job_id,
                tenant=job.tenant_id,
                queued_since=job.updated_at.isoformat(),
            )
            requeued.append(job.job_id)
        return requeued

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep every interval until `stopping`; a failed sweep (store or queue down) is logged
        and retried at the next interval."""
        while not stopping.is_set():
            try:
                await self.sweep_once()
            except RagError as exc:
                log.warning("lost-message sweep failed; retrying at the next interval", error=exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._interval)
