"""The embedded store: documents, jobs, conversations and API keys in one SQLite file.

Several service processes share the file (see `sqlite_database`). Every tenant-scoped query
filters on the tenant, so another tenant's row is indistinguishable from a missing one.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

from ragplatform.backends.store.pagination import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    from_microseconds,
    to_microseconds,
)
from ragplatform.backends.store.rows import RowReader, citations_to_json
from ragplatform.backends.store.sqlite_database import SqliteDatabase, execute, fetch_all, fetch_one, now_us
from ragplatform.core.settings import StoreSettings
from ragplatform.domain.errors import AlreadyExists, NotFound
from ragplatform.domain.models import (
    ApiKey,
    Conversation,
    Document,
    Job,
    JobClaim,
    JobState,
    NewUpload,
    Page,
    Turn,
    UploadOutcome,
)

T = TypeVar("T")

_JOB_SELECT = (
    "SELECT j.job_id, j.tenant_id, j.document_id, j.state, j.error, j.attempts, j.chunks_total,"
    " j.chunks_done, j.created_at, j.updated_at, d.filename"
    " FROM jobs j JOIN documents d ON d.document_id = j.document_id"
)


def new_id() -> str:
    return str(uuid.uuid4())


ROWS = RowReader(from_microseconds)


class SqliteStore:
    """`Store` on SQLite. Construct, then `await open()` (the factory does both)."""

    def __init__(self, settings: StoreSettings) -> None:
        self._db = SqliteDatabase.from_settings(settings)

    @property
    def path(self) -> str:
        return str(self._db.path)

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.read(lambda conn: fetch_one(conn, "SELECT 1"))

    # --- documents and jobs -------------------------------------------------------------
    async def record_upload(self, upload: NewUpload) -> UploadOutcome:
        async def transaction(conn: aiosqlite.Connection) -> UploadOutcome:
            # Prefer a same-named document when several share the content.
            same_content = await fetch_one(
                conn,
                "SELECT * FROM documents WHERE tenant_id = ? AND content_hash = ?"
                " ORDER BY filename = ? DESC, updated_at DESC LIMIT 1",
                (upload.tenant_id, upload.content_hash, upload.filename),
            )
            if same_content is not None and same_content["latest_job_id"]:
                latest = await _fetch_job(conn, same_content["latest_job_id"])
                if latest is not None and latest.state != JobState.FAILED:
                    return UploadOutcome(ROWS.document(same_content), latest, deduplicated=True)
            now = now_us()
            job_id = new_id()
            metadata = json.dumps(upload.metadata, sort_keys=True)
            named = await fetch_one(
                conn,
                "SELECT document_id FROM documents WHERE tenant_id = ? AND filename = ?",
                (upload.tenant_id, upload.filename),
            )
            if named is None:
                document_id = new_id()
                await execute(
                    conn,
                    "INSERT INTO documents (document_id, tenant_id, filename, content_type, content_hash,"
                    " size_bytes, blob_key, metadata, chunk_count, latest_job_id, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    (
                        document_id,
                        upload.tenant_id,
                        upload.filename,
                        upload.content_type,
                        upload.content_hash,
                        upload.size_bytes,
                        upload.blob_key,
                        metadata,
                        job_id,
                        now,
                        now,
                    ),
                )
            else:
                document_id = named["document_id"]
                # chunk_count keeps describing the indexed (old) content until the new job succeeds.
                await execute(
                    conn,
                    "UPDATE documents SET content_type = ?, content_hash = ?, size_bytes = ?, blob_key = ?,"
                    " metadata = ?, latest_job_id = ?, updated_at = ? WHERE document_id = ?",
                    (
                        upload.content_type,
                        upload.content_hash,
                        upload.size_bytes,
                        upload.blob_key,
                        metadata,
                        job_id,
                        now,
                        document_id,
                    ),
                )
            await execute(
                conn,
                "INSERT INTO jobs (job_id, tenant_id, document_id, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, upload.tenant_id, document_id, JobState.QUEUED.value, now, now),
            )
            document = await fetch_one(conn, "SELECT * FROM documents WHERE document_id = ?", (document_id,))
            job = await _fetch_job(conn, job_id)
            assert document is not None  # written just above
            assert job is not None
            return UploadOutcome(ROWS.document(document), job, deduplicated=False)

        return await self._db.write(transaction)

    async def get_document(self, tenant_id: str, document_id: str) -> Document:
        async def transaction(conn: aiosqlite.Connection) -> Document:
            return ROWS.document(await _require_document(conn, tenant_id, document_id))

        return await self._db.read(transaction)

    async def list_documents(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Document]:
        return await self._page(
            "SELECT * FROM documents WHERE tenant_id = ?",
            [tenant_id],
            "documents.created_at",
            "document_id",
            limit,
            cursor,
            ROWS.document,
            lambda d: (d.created_at, d.document_id),
        )

    async def delete_document(self, tenant_id: str, document_id: str) -> Document:
        async def transaction(conn: aiosqlite.Connection) -> Document:
            document = ROWS.document(await _require_document(conn, tenant_id, document_id))
            await execute(conn, "DELETE FROM jobs WHERE document_id = ?", (document_id,))
            await execute(conn, "DELETE FROM documents WHERE document_id = ?", (document_id,))
            await _bump_corpus_version(conn, tenant_id)
            return document

        return await self._db.write(transaction)

    async def get_job(self, tenant_id: str, job_id: str) -> Job:
        async def transaction(conn: aiosqlite.Connection) -> Job:
            job = await _fetch_job(conn, job_id)
            if job is None or job.tenant_id != tenant_id:
                raise _job_not_found(job_id)
            return job

        return await self._db.read(transaction)

    async def get_job_any_tenant(self, job_id: str) -> Job:
        async def transaction(conn: aiosqlite.Connection) -> Job:
            return await _require_job(conn, job_id)

        return await self._db.read(transaction)

    async def list_jobs(self, tenant_id: str, state: JobState | None, limit: int, cursor: str = "") -> Page[Job]:
        sql = _JOB_SELECT + " WHERE j.tenant_id = ?"
        params: list[Any] = [tenant_id]
        if state is not None:
            sql += " AND j.state = ?"
            params.append(state.value)
        return await self._page(
            sql, params, "j.created_at", "j.job_id", limit, cursor, ROWS.job, lambda j: (j.created_at, j.job_id)
        )

    async def start_job(self, job_id: str) -> Job:
        """QUEUED/RUNNING -> RUNNING with attempts + 1. A job already SUCCEEDED or FAILED is
        returned unchanged, so a worker holding a redelivered message sees that and acks it."""

        async def transaction(conn: aiosqlite.Connection) -> Job:
            job = await _require_job(conn, job_id)
            if job.state in (JobState.SUCCEEDED, JobState.FAILED):
                return job
            await execute(
                conn,
                "UPDATE jobs SET state = ?, attempts = attempts + 1, updated_at = ? WHERE job_id = ?",
                (JobState.RUNNING.value, now_us(), job_id),
            )
            return await _require_job(conn, job_id)

        return await self._db.write(transaction)

    async def claim_jobs(self, claims: Sequence[tuple[str, int | None]]) -> list[JobClaim | None]:
        async def transaction(conn: aiosqlite.Connection) -> list[JobClaim | None]:
            return [await _claim(conn, job_id, attempts_below) for job_id, attempts_below in claims]

        return await self._db.write(transaction) if claims else []

    async def set_job_progress(self, job_id: str, chunks_total: int, chunks_done: int) -> None:
        async def transaction(conn: aiosqlite.Connection) -> None:
            changed = await execute(
                conn,
                "UPDATE jobs SET chunks_total = ?, chunks_done = ?, updated_at = ? WHERE job_id = ?",
                (chunks_total, chunks_done, now_us(), job_id),
            )
            if not changed:
                raise _job_not_found(job_id)

        await self._db.write(transaction)

    async def succeed_job(self, job_id: str, chunk_count: int) -> Job:
        async def transaction(conn: aiosqlite.Connection) -> Job | None:
            return await _succeed(conn, job_id, chunk_count, only_if_latest=False)

        job = await self._db.write(transaction)
        if job is None:
            raise _job_not_found(job_id)
        return job

    async def succeed_latest_jobs(self, jobs: Sequence[tuple[str, int]]) -> list[Job | None]:
        async def transaction(conn: aiosqlite.Connection) -> list[Job | None]:
            return [await _succeed(conn, job_id, count, only_if_latest=True) for job_id, count in jobs]

        return await self._db.write(transaction) if jobs else []

    async def fail_job(self, job_id: str, error: str) -> Job:
        return await self._set_state(job_id, JobState.FAILED, error)

    async def requeue_job(self, job_id: str, error: str) -> Job:
        return await self._set_state(job_id, JobState.QUEUED, error)

    async def count_jobs(self, state: JobState) -> int:
        row = await self._db.read(
            lambda conn: fetch_one(conn, "SELECT COUNT(*) FROM jobs WHERE state = ?", (state.value,))
        )
        return int(row[0]) if row else 0

    async def stale_unfinished_jobs(self, idle_since: datetime, limit: int) -> list[Job]:
        sql = _JOB_SELECT + " WHERE j.state IN (?, ?) AND j.updated_at < ? ORDER BY j.updated_at LIMIT ?"
        params = (JobState.QUEUED.value, JobState.RUNNING.value, to_microseconds(idle_since), limit)
        rows = await self._db.read(lambda conn: fetch_all(conn, sql, params))
        return [ROWS.job(row) for row in rows]

    async def touch_stale_job(self, job_id: str, seen_updated_at: datetime) -> bool:
        async def transaction(conn: aiosqlite.Connection) -> bool:
            changed = await execute(
                conn,
                "UPDATE jobs SET updated_at = ? WHERE job_id = ? AND state IN (?, ?) AND updated_at = ?",
                (now_us(), job_id, JobState.QUEUED.value, JobState.RUNNING.value, to_microseconds(seen_updated_at)),
            )
            return bool(changed)

        return await self._db.write(transaction)

    async def corpus_version(self, tenant_id: str) -> int:
        row = await self._db.read(
            lambda conn: fetch_one(conn, "SELECT version FROM corpus_versions WHERE tenant_id = ?", (tenant_id,))
        )
        return int(row[0]) if row else 0

    # --- conversations -------------------------------------------------------------------
    async def create_conversation(self, tenant_id: str, title: str) -> Conversation:
        return await self.start_conversation(tenant_id, title, [])

    async def start_conversation(self, tenant_id: str, title: str, turns: list[Turn]) -> Conversation:
        async def transaction(conn: aiosqlite.Connection) -> Conversation:
            conversation_id, now = new_id(), now_us()
            await execute(
                conn,
                "INSERT INTO conversations (conversation_id, tenant_id, title, turn_count, created_at,"
                " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                (conversation_id, tenant_id, title, now, now),
            )
            return await _append(conn, tenant_id, conversation_id, turns)

        return await self._db.write(transaction)

    async def append_turns(self, tenant_id: str, conversation_id: str, turns: list[Turn]) -> Conversation:
        async def transaction(conn: aiosqlite.Connection) -> Conversation:
            return await _append(conn, tenant_id, conversation_id, turns)

        return await self._db.write(transaction)

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        async def transaction(conn: aiosqlite.Connection) -> Conversation:
            return ROWS.conversation(await _require_conversation(conn, tenant_id, conversation_id))

        return await self._db.read(transaction)

    async def get_turns(self, tenant_id: str, conversation_id: str, max_turns: int = 0) -> list[Turn]:
        async def transaction(conn: aiosqlite.Connection) -> list[Turn]:
            await _require_conversation(conn, tenant_id, conversation_id)
            sql = "SELECT * FROM turns WHERE conversation_id = ? ORDER BY seq DESC"
            params: list[Any] = [conversation_id]
            if max_turns > 0:
                sql += " LIMIT ?"
                params.append(max_turns)
            rows = await fetch_all(conn, sql, params)
            return [ROWS.turn(row) for row in reversed(rows)]

        return await self._db.read(transaction)

    async def list_conversations(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Conversation]:
        return await self._page(
            "SELECT * FROM conversations WHERE tenant_id = ?",
            [tenant_id],
            "created_at",
            "conversation_id",
            limit,
            cursor,
            ROWS.conversation,
            lambda c: (c.created_at, c.conversation_id),
        )

    # --- API keys --------------------------------------------------------------------------
    async def create_api_key(self, tenant_id: str, name: str, key_hash: str) -> ApiKey:
        async def transaction(conn: aiosqlite.Connection) -> ApiKey:
            key_id = new_id()
            try:
                await execute(
                    conn,
                    "INSERT INTO api_keys (key_id, tenant_id, name, key_hash, revoked, created_at)"
                    " VALUES (?, ?, ?, ?, 0, ?)",
                    (key_id, tenant_id, name, key_hash, now_us()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("an API key with this secret exists already; generate a new key") from None
            row = await fetch_one(conn, "SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
            assert row is not None
            return ROWS.api_key(row)

        return await self._db.write(transaction)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._db.read(
            lambda conn: fetch_one(conn, "SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        )
        return ROWS.api_key(row) if row else None

    async def list_api_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        params: tuple[str, ...] = ()
        if tenant_id is None:
            sql = "SELECT * FROM api_keys ORDER BY created_at, key_id"
        else:
            sql, params = (
                "SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id",
                (tenant_id,),
            )
        rows = await self._db.read(lambda conn: fetch_all(conn, sql, params))
        return [ROWS.api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        async def transaction(conn: aiosqlite.Connection) -> ApiKey:
            await execute(conn, "UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,))
            row = await fetch_one(conn, "SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
            if row is None:
                raise NotFound(f"API key {key_id!r} was not found; list the keys to see their ids")
            return ROWS.api_key(row)

        return await self._db.write(transaction)

    async def api_key_revision(self) -> int:
        row = await self._db.read(lambda conn: fetch_one(conn, "SELECT COUNT(*) FROM api_keys WHERE revoked = 1"))
        return int(row[0]) if row else 0

    # --- helpers ---------------------------------------------------------------------------
    async def _set_state(self, job_id: str, state: JobState, error: str) -> Job:
        async def transaction(conn: aiosqlite.Connection) -> Job:
            changed = await execute(
                conn,
                "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE job_id = ?",
                (state.value, error, now_us(), job_id),
            )
            if not changed:
                raise _job_not_found(job_id)
            return await _require_job(conn, job_id)

        return await self._db.write(transaction)

    async def _page(
        self,
        base_sql: str,
        params: list[Any],
        created_column: str,
        id_column: str,
        limit: int,
        cursor: str,
        convert: Callable[[sqlite3.Row], T],
        position: Callable[[T], tuple[Any, str]],
    ) -> Page[T]:
        """Keyset pagination, newest first: one row more than asked tells whether a page follows."""
        limit = clamp_limit(limit)
        sql, args = base_sql, list(params)
        if cursor:
            created_at, item_id = decode_cursor(cursor)
            sql += f" AND ({created_column}, {id_column}) < (?, ?)"
            args += [to_microseconds(created_at), item_id]
        sql += f" ORDER BY {created_column} DESC, {id_column} DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self._db.read(lambda conn: fetch_all(conn, sql, args))
        items = [convert(row) for row in rows[:limit]]
        next_cursor = encode_cursor(*position(items[-1])) if len(rows) > limit else ""
        return Page(items=items, next_cursor=next_cursor)


# --- lookups ------------------------------------------------------------------------------
def _job_not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} was not found (or its document was deleted); list jobs to see current ones")


async def _fetch_job(conn: aiosqlite.Connection, job_id: str) -> Job | None:
    row = await fetch_one(conn, _JOB_SELECT + " WHERE j.job_id = ?", (job_id,))
    return ROWS.job(row) if row else None


async def _require_job(conn: aiosqlite.Connection, job_id: str) -> Job:
    job = await _fetch_job(conn, job_id)
    if job is None:
        raise _job_not_found(job_id)
    return job


async def _claim(conn: aiosqlite.Connection, job_id: str, attempts_below: int | None) -> JobClaim | None:
    """One job's claim (see `Store.claim_jobs`) inside the caller's write transaction; None when
    the job or its document is gone."""
    job = await _fetch_job(conn, job_id)
    if job is None:
        return None
    row = await fetch_one(
        conn, "SELECT * FROM documents WHERE document_id = ? AND tenant_id = ?", (job.document_id, job.tenant_id)
    )
    if row is None:
        return None
    document = ROWS.document(row)
    startable = (
        job.state in (JobState.QUEUED, JobState.RUNNING)
        and (attempts_below is None or job.attempts < attempts_below)
        and document.latest_job_id in ("", job_id)
    )
    if not startable:
        return JobClaim(job, document, None)
    await execute(
        conn,
        "UPDATE jobs SET state = ?, attempts = attempts + 1, updated_at = ? WHERE job_id = ?",
        (JobState.RUNNING.value, now_us(), job_id),
    )
    return JobClaim(job, document, await _require_job(conn, job_id))


async def _succeed(conn: aiosqlite.Connection, job_id: str, chunk_count: int, only_if_latest: bool) -> Job | None:
    """RUNNING -> SUCCEEDED inside the caller's write transaction; None when the job is gone, or
    (`only_if_latest`) no longer its document's latest."""
    job = await _fetch_job(conn, job_id)
    if job is None:
        return None
    if only_if_latest:
        document = await fetch_one(
            conn, "SELECT latest_job_id FROM documents WHERE document_id = ?", (job.document_id,)
        )
        if document is not None and document["latest_job_id"] not in (None, "", job_id):
            return None
    now = now_us()
    await execute(
        conn,
        "UPDATE jobs SET state = ?, error = '', chunks_total = ?, chunks_done = ?, updated_at = ? WHERE job_id = ?",
        (JobState.SUCCEEDED.value, chunk_count, chunk_count, now, job_id),
    )
    # Only the document's latest job describes what is indexed now: a late finisher for older
    # content must not overwrite the count.
    await execute(
        conn,
        "UPDATE documents SET chunk_count = ?, updated_at = ? WHERE document_id = ? AND latest_job_id = ?",
        (chunk_count, now, job.document_id, job_id),
    )
    await _bump_corpus_version(conn, job.tenant_id)
    return await _require_job(conn, job_id)


async def _require_document(conn: aiosqlite.Connection, tenant_id: str, document_id: str) -> sqlite3.Row:
    row = await fetch_one(
        conn, "SELECT * FROM documents WHERE document_id = ? AND tenant_id = ?", (document_id, tenant_id)
    )
    if row is None:
        raise NotFound(f"document {document_id!r} was not found; list documents to see the ones that exist")
    return row


async def _append(conn: aiosqlite.Connection, tenant_id: str, conversation_id: str, turns: list[Turn]) -> Conversation:
    """Add `turns` after the conversation's last one, inside the caller's write transaction."""
    row = await _require_conversation(conn, tenant_id, conversation_id)
    if not turns:
        return ROWS.conversation(row)
    now = now_us()
    first = int(row["turn_count"])
    await conn.executemany(
        "INSERT INTO turns (conversation_id, seq, role, content, citations, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                conversation_id,
                first + offset,
                turn.role.value,
                turn.content,
                citations_to_json(turn.citations),
                to_microseconds(turn.created_at) if turn.created_at else now,
            )
            for offset, turn in enumerate(turns)
        ],
    )
    await execute(
        conn,
        "UPDATE conversations SET turn_count = turn_count + ?, updated_at = ? WHERE conversation_id = ?",
        (len(turns), now, conversation_id),
    )
    return ROWS.conversation(await _require_conversation(conn, tenant_id, conversation_id))


async def _require_conversation(conn: aiosqlite.Connection, tenant_id: str, conversation_id: str) -> sqlite3.Row:
    row = await fetch_one(
        conn,
        "SELECT * FROM conversations WHERE conversation_id = ? AND tenant_id = ?",
        (conversation_id, tenant_id),
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id!r} was not found; start a new one or list conversations")
    return row


async def _bump_corpus_version(conn: aiosqlite.Connection, tenant_id: str) -> None:
    await execute(
        conn,
        "INSERT INTO corpus_versions (tenant_id, version) VALUES (?, 1)"
        " ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1",
        (tenant_id,),
    )
