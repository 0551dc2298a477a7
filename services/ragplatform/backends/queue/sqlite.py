"""The embedded job queue: a table in the SQLite store's file.

Messages live in `queue_messages` (one row each, `queue` column = RAG_QUEUE_NAME); a message is
visible when `visible_at <= now`. `receive` claims the oldest visible message in one
`UPDATE ... RETURNING` statement, which SQLite runs under its write lock, so two consumers -
even in two processes - never claim the same message at once; the claim hides the message for
the visibility timeout, after which it is delivered again with `delivery_count + 1`.

Consumers run in other processes, so no in-memory signal can tell them a message arrived:
`receive` polls with a short sleep until its wait runs out. Polling costs one indexed query
every `POLL_INTERVAL_SECONDS` per idle consumer, which is nothing for a local file.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import aiosqlite

from ragplatform.backends.queue.base import QueueMessage
from ragplatform.backends.store.sqlite_database import SqliteDatabase, execute, fetch_all, fetch_one, now_us
from ragplatform.core.settings import QueueSettings

POLL_INTERVAL_SECONDS = 0.1


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


class SqliteQueue:
    """`JobQueue` on the SQLite file. Construct, then `await open()` (the factory does both)."""

    def __init__(self, settings: QueueSettings, poll_interval_seconds: float = POLL_INTERVAL_SECONDS) -> None:
        self._db = SqliteDatabase.from_settings(settings)
        self._queue = settings.queue_name
        self._visibility_us = _us(settings.visibility_timeout_seconds)
        self._poll = poll_interval_seconds

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def enqueue(self, job_id: str, tenant_id: str, traceparent: str = "", payload: bytes = b"") -> str:
        # No payload is kept: the embedded blob store is a local file, as cheap to read as a copy
        # of the bytes in this file would be, and the copy would lengthen the write lock.
        message_id = str(uuid.uuid4())

        async def transaction(conn: aiosqlite.Connection) -> None:
            now = now_us()
            await execute(
                conn,
                "INSERT INTO queue_messages (message_id, queue, job_id, tenant_id, delivery_count,"
                " visible_at, enqueued_at, traceparent) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                (message_id, self._queue, job_id, tenant_id, now, now, traceparent),
            )

        await self._db.write(transaction)
        return message_id

    async def receive(self, consumer: str, wait_seconds: float) -> QueueMessage | None:
        """Claim the oldest visible message, polling until `wait_seconds` have passed."""
        messages = await self.receive_many(consumer, 1, wait_seconds)
        return messages[0] if messages else None

    async def receive_many(self, consumer: str, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """Claim up to `max_messages` of the oldest visible messages in one statement, polling
        until `wait_seconds` have passed for the first."""
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            messages = await self._claim(consumer, max(1, max_messages))
            if messages:
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(self._poll, remaining))

    async def _claim(self, consumer: str, limit: int) -> list[QueueMessage]:
        async def transaction(conn: aiosqlite.Connection) -> list[QueueMessage]:
            now = now_us()
            rows = await fetch_all(
                conn,
                "UPDATE queue_messages SET visible_at = ?, delivery_count = delivery_count + 1, consumer = ?"
                " WHERE seq IN (SELECT seq FROM queue_messages WHERE queue = ? AND visible_at <= ?"
                "               ORDER BY seq LIMIT ?)"
                " RETURNING seq, message_id, job_id, tenant_id, delivery_count, traceparent",
                (now + self._visibility_us, consumer, self._queue, now, limit),
            )
            return [
                QueueMessage(
                    row["message_id"], row["job_id"], row["tenant_id"], int(row["delivery_count"]), row["traceparent"]
                )
                for row in sorted(rows, key=lambda row: int(row["seq"]))
            ]

        return await self._db.write(transaction)

    async def ack(self, *messages: QueueMessage) -> None:
        """Delete the messages, whoever holds them now: the jobs they name are done."""
        if not messages:
            return

        async def transaction(conn: aiosqlite.Connection) -> None:
            await conn.executemany(
                "DELETE FROM queue_messages WHERE message_id = ?", [(message.message_id,) for message in messages]
            )

        await self._db.write(transaction)

    async def extend(self, consumer: str, messages: Sequence[QueueMessage]) -> set[str]:
        """Hide again for the visibility timeout the messages `consumer` still holds (it received
        them last, and they were neither acked nor released since)."""
        if not messages:
            return set()

        async def transaction(conn: aiosqlite.Connection) -> set[str]:
            visible_at = now_us() + self._visibility_us
            kept: set[str] = set()
            for message in messages:
                rows = await fetch_all(
                    conn,
                    "UPDATE queue_messages SET visible_at = ? WHERE message_id = ? AND consumer = ?"
                    " RETURNING message_id",
                    (visible_at, message.message_id, consumer),
                )
                kept.update(str(row["message_id"]) for row in rows)
            return kept

        return await self._db.write(transaction)

    async def release(self, message: QueueMessage, delay_seconds: float = 0.0) -> None:
        """Make it visible again after the delay. Ignored when another consumer has received the
        message since (its `delivery_count` moved on): a stale holder must not expose a message
        someone else is working on."""

        async def transaction(conn: aiosqlite.Connection) -> None:
            await execute(
                conn,
                "UPDATE queue_messages SET visible_at = ?, consumer = '' WHERE message_id = ? AND delivery_count = ?",
                (now_us() + _us(max(0.0, delay_seconds)), message.message_id, message.delivery_count),
            )

        await self._db.write(transaction)

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        async def transaction(conn: aiosqlite.Connection) -> None:
            await execute(
                conn,
                "INSERT OR IGNORE INTO dead_letters (message_id, queue, job_id, tenant_id, delivery_count,"
                " reason, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.message_id,
                    self._queue,
                    message.job_id,
                    message.tenant_id,
                    message.delivery_count,
                    reason,
                    now_us(),
                ),
            )
            await execute(conn, "DELETE FROM queue_messages WHERE message_id = ?", (message.message_id,))

        await self._db.write(transaction)

    async def depth(self) -> int:
        """Messages waiting or in flight (dead letters are elsewhere and not counted)."""
        row = await self._db.read(
            lambda conn: fetch_one(conn, "SELECT COUNT(*) FROM queue_messages WHERE queue = ?", (self._queue,))
        )
        return int(row[0]) if row else 0

    async def job_ids_with_messages(self) -> set[str]:
        rows = await self._db.read(
            lambda conn: fetch_all(conn, "SELECT DISTINCT job_id FROM queue_messages WHERE queue = ?", (self._queue,))
        )
        return {str(row[0]) for row in rows}

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]:
        rows = await self._db.read(
            lambda conn: fetch_all(
                conn,
                "SELECT message_id, job_id, tenant_id, delivery_count, reason FROM dead_letters"
                " WHERE queue = ? ORDER BY seq",
                (self._queue,),
            )
        )
        return [
            (
                QueueMessage(row["message_id"], row["job_id"], row["tenant_id"], int(row["delivery_count"])),
                row["reason"],
            )
            for row in rows
        ]

    async def replay_dead_letters(self) -> int:
        """Move every dead letter back as a new message (new id, delivery count starting over)."""

        async def transaction(conn: aiosqlite.Connection) -> int:
            rows = await fetch_all(
                conn,
                "SELECT seq, job_id, tenant_id FROM dead_letters WHERE queue = ? ORDER BY seq",
                (self._queue,),
            )
            now = now_us()
            for row in rows:
                await execute(
                    conn,
                    "INSERT INTO queue_messages (message_id, queue, job_id, tenant_id, delivery_count,"
                    " visible_at, enqueued_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (str(uuid.uuid4()), self._queue, row["job_id"], row["tenant_id"], now, now),
                )
                await execute(conn, "DELETE FROM dead_letters WHERE seq = ?", (row["seq"],))
            return len(rows)

        return await self._db.write(transaction)
