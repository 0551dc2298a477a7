"""The ingestion job queue: at-least-once delivery of job ids to workers.

Adapters: `sqlite.py` (embedded default, persisted in the SQLite store's file),
`redis_streams.py` (production: one stream + consumer group, dead-letter stream).
A received message stays invisible to other consumers for the visibility timeout (which its
consumer may `extend` while it works); if it is neither acked, released nor extended by then,
another consumer receives it again (attempt + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    job_id: str
    tenant_id: str
    # 1 on first delivery; grows each time the message is delivered again.
    delivery_count: int
    # W3C `traceparent` of the upload that queued it ('' without tracing): the job's spans join
    # the upload's trace. Kept across redeliveries and delayed retries; a dead-letter replay
    # starts afresh.
    traceparent: str = ""
    # The document's bytes when the upload was small enough to travel with its job (see
    # `enqueue`), else b"". A hint that saves the worker an object-store read: it may be absent
    # on any delivery, and the blob store always holds the same bytes.
    payload: bytes = b""


class JobQueue(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, job_id: str, tenant_id: str, traceparent: str = "", payload: bytes = b"") -> str:
        """Add a message; return its id. `payload` (the document's bytes, small) is handed to the
        consumer if the adapter keeps payloads and the message is received soon enough; else
        the consumer gets b"" and reads the blob."""

    async def receive(self, consumer: str, wait_seconds: float) -> QueueMessage | None:
        """The next visible message (reclaiming any whose visibility timeout ran out), or None
        after waiting up to `wait_seconds`. Same as `receive_many` with one message."""

    async def receive_many(self, consumer: str, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """Up to `max_messages` visible messages in one round trip (reclaimed ones first, then
        the oldest waiting), each with the same guarantees as `receive`; waits up to
        `wait_seconds` for the first one, never for more; [] when none came."""

    async def ack(self, *messages: QueueMessage) -> None:
        """Done with them: never deliver them again (one round trip for them all)."""

    async def extend(self, consumer: str, messages: Sequence[QueueMessage]) -> set[str]:
        """Restart the visibility timeout of the messages `consumer` still holds (received last
        by it, neither acked nor released since): a heartbeat while their jobs run, so that a
        job longer than the timeout is not delivered again while its worker is alive. Leaves
        delivery counts alone; returns the ids of the messages it extended (one round trip)."""

    async def release(self, message: QueueMessage, delay_seconds: float = 0.0) -> None:
        """Give it back undone, visible again after `delay_seconds` (drain on SIGTERM, backoff)."""

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        """Move it to the dead-letter queue with the reason."""

    async def depth(self) -> int:
        """Messages waiting or in flight (for Redis: consumer-group lag + pending)."""

    async def job_ids_with_messages(self) -> set[str]:
        """The job ids of every message waiting, in flight or delayed (not dead letters): a
        QUEUED job missing here has lost its message. Reads the whole queue: for sweeps."""

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]: ...

    async def replay_dead_letters(self) -> int:
        """Re-enqueue every dead letter; return how many."""
