"""The production store: PostgreSQL through PgBouncer in transaction pooling mode, via asyncpg.

Callers may rely on:
* Transaction pooling is safe: no server-side prepared-statement cache (`statement_cache_size=0`),
  no session state (no SET, no session advisory locks, no LISTEN); every multi-row change runs
  in one transaction, so it lands on one server connection and is atomic.
* Failing fast and recovering: a database that cannot be reached (refused, reset, shutting
  down, a statement past RAG_STORE_TIMEOUT_SECONDS, no pool connection within that time) raises
  `Unavailable`; the pool replaces broken connections by itself, so the same store object works
  again once the database answers, with no process restart.
* Tenant scoping: every tenant-scoped query filters on the tenant, so another tenant's row looks
  missing (`NotFound`).
* Pool sizes come from RAG_STORE_POOL_MIN / RAG_STORE_POOL_MAX; the password from
  RAG_STORE_PASSWORD (kept out of the URL).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from ragplatform.backends.store.pagination import clamp_limit, decode_cursor, encode_cursor
from ragplatform.backends.store.postgres_migrations import apply_migrations, check_schema
from ragplatform.backends.store.rows import RowReader, citations_to_json
from ragplatform.core.redaction import redact_url
from ragplatform.core.settings import StoreSettings
from ragplatform.domain.errors import AlreadyExists, NotFound, ResourceExhausted, Unavailable
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

__all__ = ["PostgresStore", "apply_migrations", "migrate"]

T = TypeVar("T")

_JOB_SELECT = (
    "SELECT j.job_id, j.tenant_id, j.document_id, j.state, j.error, j.attempts, j.chunks_total,"
    " j.chunks_done, j.created_at, j.updated_at, d.filename"
    " FROM jobs j JOIN documents d ON d.document_id = j.document_id"
)
# The job rows a data-modifying CTE named `updated` returned (RETURNING *), as _JOB_SELECT reads
# them: the statement's own SELECT sees the table as it was before the update.
_UPDATED_JOB_SELECT = (
    "SELECT u.job_id, u.tenant_id, u.document_id, u.state, u.error, u.attempts, u.chunks_total,"
    " u.chunks_done, u.created_at, u.updated_at, d.filename"
    " FROM updated u JOIN documents d ON d.document_id = u.document_id"
)
_DOCUMENT_COLUMNS = (
    "document_id, tenant_id, filename, content_type, content_hash, size_bytes, blob_key,"
    " metadata::text AS metadata, chunk_count, latest_job_id, created_at, updated_at"
)
# Store.claim_jobs: per job asked for (`n`: its position), the job and its document as they were
# (`d_` columns), and the attempt the update started (`s_` columns, NULL when none did).
_CLAIM_JOBS = (
    "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS w(job_id, attempts_below, n)),"
    " current AS (SELECT w.n, w.attempts_below, j.job_id, j.tenant_id, j.document_id, j.state, j.error, j.attempts,"
    " j.chunks_total, j.chunks_done, j.created_at, j.updated_at, d.filename, d.document_id AS d_document_id,"
    " d.tenant_id AS d_tenant_id, d.filename AS d_filename, d.content_type AS d_content_type,"
    " d.content_hash AS d_content_hash, d.size_bytes AS d_size_bytes, d.blob_key AS d_blob_key,"
    " d.metadata::text AS d_metadata, d.chunk_count AS d_chunk_count, d.latest_job_id AS d_latest_job_id,"
    " d.created_at AS d_created_at, d.updated_at AS d_updated_at"
    " FROM wanted w JOIN jobs j ON j.job_id = w.job_id JOIN documents d ON d.document_id = j.document_id),"
    " started AS (UPDATE jobs SET state = 'RUNNING', attempts = jobs.attempts + 1, updated_at = now()"
    " FROM current c WHERE jobs.job_id = c.job_id AND jobs.state IN ('QUEUED', 'RUNNING')"
    " AND jobs.attempts < c.attempts_below AND c.d_latest_job_id IN ('', jobs.job_id)"
    " RETURNING jobs.job_id, jobs.attempts, jobs.updated_at)"
    " SELECT c.*, s.attempts AS s_attempts, s.updated_at AS s_updated_at"
    " FROM current c LEFT JOIN started s ON s.job_id = c.job_id"
)


def _succeed_jobs_sql(condition: str) -> str:
    """Store.succeed_latest_jobs / succeed_job: per job (`$1`, its chunk count in `$2`) for which
    `condition` holds, the job, its document's count and the tenant's corpus version, in one
    statement. Only the document's latest job describes what is indexed now: a late finisher
    for older content must not overwrite the count. Corpus versions are bumped once per tenant,
    in tenant order (two workers' statements then lock those rows in the same order)."""
    return (
        "WITH wanted AS (SELECT * FROM unnest($1::text[], $2::int[]) AS w(job_id, chunk_count)),"  # noqa: S608
        " updated AS (UPDATE jobs SET state = 'SUCCEEDED', error = '', chunks_total = w.chunk_count,"
        f" chunks_done = w.chunk_count, updated_at = now() FROM wanted w WHERE jobs.job_id = w.job_id{condition}"
        " RETURNING jobs.*),"
        " counted AS (UPDATE documents SET chunk_count = u.chunks_done, updated_at = now() FROM updated u"
        " WHERE documents.document_id = u.document_id AND documents.latest_job_id = u.job_id),"
        " versioned AS (INSERT INTO corpus_versions (tenant_id, version)"
        " SELECT DISTINCT tenant_id, 1 FROM updated ORDER BY tenant_id"
        " ON CONFLICT (tenant_id) DO UPDATE SET version = corpus_versions.version + 1)"
        f" {_UPDATED_JOB_SELECT}"
    )


_SUCCEED_JOBS = _succeed_jobs_sql("")
# ... only while the job is its document's latest (the document was not uploaded again since).
_SUCCEED_LATEST_JOBS = _succeed_jobs_sql(
    " AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.document_id = jobs.document_id"
    " AND d.latest_job_id NOT IN ('', jobs.job_id))"
)
_INT_MAX = 2**31 - 1
# The retry hint when a call found every pooled connection busy for the whole store timeout.
POOL_BUSY_RETRY_SECONDS = 1.0
# S608 (SQL built from strings) is silenced where only the constant column list is interpolated;
# every value travels as a $n parameter.
# SQLSTATE classes that mean "the database cannot answer now", not "the request is wrong":
# 08 connection exceptions (PgBouncer reports its own failures as 08P01), 57P operator
# intervention (shutdown, restart), 53 insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53")


def new_id() -> str:
    return str(uuid.uuid4())


def dsn(settings: StoreSettings) -> str:
    """RAG_STORE_URL as asyncpg wants it (postgres:// is accepted as a synonym)."""
    return settings.store_url.replace("postgres://", "postgresql://", 1)


def unavailable_error(url: str, exc: BaseException) -> Unavailable:
    detail = f"{exc.__class__.__name__}: {exc}".strip().rstrip(":")
    return Unavailable(
        f"PostgreSQL at {redact_url(url)} cannot answer now ({detail}); check RAG_STORE_URL, "
        "that PgBouncer and PostgreSQL are running, then retry"
    )


def pool_saturated(pool: asyncpg.Pool) -> bool:
    """Whether the pool has opened every connection it may: a wait for one that timed out then
    waited behind other calls (one may have come back since the timeout fired, so whether one is
    idle now says nothing), not for a connection to PostgreSQL to open."""
    return bool(pool.get_size() >= pool.get_max_size())


def is_unavailable_error(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable or not serving (worth a retry later)."""
    # InternalClientError: the pool's own bookkeeping, seen when a connection broke mid-release
    # while the server went away; the pool recovers on the next acquire.
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    return False


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to undo."""


ROWS = RowReader(lambda value: value)  # asyncpg returns timestamptz as datetime


class PostgresStore:
    """`Store` on PostgreSQL. Construct, then `await open()` (the factory does both)."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._url = dsn(settings)
        self._timeout = settings.store_timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool, then migrate (RAG_STORE_MIGRATE=true) or check the schema version.
        Idempotent. Raise `Unavailable` when the database cannot be reached."""
        async with self._open_lock:
            if self._pool is not None:
                return
            password = self._settings.store_password
            try:
                pool = await asyncpg.create_pool(
                    dsn=self._url,
                    password=password.get_secret_value() if password else None,
                    min_size=min(self._settings.store_pool_min, self._settings.store_pool_max),
                    max_size=self._settings.store_pool_max,
                    # PgBouncer in transaction mode hands each transaction any server connection:
                    # a statement prepared on one would be missing on the next.
                    statement_cache_size=0,
                    command_timeout=self._timeout,
                    timeout=self._timeout,
                    # Connections idle this long are closed, so a pool shrinks after a burst.
                    max_inactive_connection_lifetime=60.0,
                    # No session state to reset (see the module docstring): asyncpg's default
                    # reset query on every release (RESET ALL, UNLISTEN *, ...) would be one more
                    # round trip per store call. A transaction left open is still rolled back.
                    reset=_keep_session,
                )
            except Exception as exc:
                if is_unavailable_error(exc):
                    raise self._unavailable(exc) from exc
                raise
            self._pool = pool
        try:
            async with self._connection() as conn:
                if self._settings.store_migrate:
                    await apply_migrations(conn)
                else:
                    await check_schema(conn)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    def _unavailable(self, exc: BaseException) -> Unavailable:
        return unavailable_error(self._url, exc)

    def _busy(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"every PostgreSQL connection of this process (RAG_STORE_POOL_MAX={self._settings.store_pool_max}) "
            f"stayed busy for {self._timeout:g} s: it is at capacity; retry after the hint "
            "(operators: more replicas, or a larger pool if PostgreSQL has room)",
            retry_after_seconds=POOL_BUSY_RETRY_SECONDS,
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; connection-level failures inside the block become `Unavailable`."""
        pool = self._pool
        if pool is None:
            raise Unavailable("the PostgreSQL store is not open (or was closed); restart the service")
        acquired = False
        try:
            async with pool.acquire(timeout=self._timeout) as conn:
                acquired = True
                yield conn
        except Unavailable:
            raise
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The call was cancelled (a deadline ran out) mid-query; asyncpg may then fail
                # with another error while releasing the connection. It is still a cancellation.
                raise asyncio.CancelledError from exc
            if isinstance(exc, TimeoutError) and not acquired and pool_saturated(pool):
                # Every connection stayed busy with other calls: capacity, not an outage.
                raise self._busy() from exc
            if is_unavailable_error(exc):
                raise self._unavailable(exc) from exc
            raise

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    # --- documents and jobs ------------------------------------------------------------------
    async def record_upload(self, upload: NewUpload) -> UploadOutcome:
        async with self._transaction() as conn:
            # Serialise uploads of the same content in a tenant for the rest of this transaction:
            # two concurrent uploads of one file must not both create a document for it. (Two
            # uploads under one name meet on the (tenant, filename) row instead: the upsert below
            # waits for the other's row lock.) Per content, not per tenant, so one tenant's many
            # uploaders do not queue behind each other. Transaction-scoped: safe through PgBouncer.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"upload:{upload.tenant_id}:{upload.content_hash}",
            )
            same_content = await conn.fetchrow(
                f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = $1 AND content_hash = $2"  # noqa: S608
                " ORDER BY filename = $3 DESC, updated_at DESC LIMIT 1",
                upload.tenant_id,
                upload.content_hash,
                upload.filename,
            )
            if same_content is not None and same_content["latest_job_id"]:
                latest = await _fetch_job(conn, same_content["latest_job_id"])
                if latest is not None and latest.state != JobState.FAILED:
                    return UploadOutcome(ROWS.document(same_content), latest, deduplicated=True)
            job_id = new_id()
            metadata = json.dumps(upload.metadata, sort_keys=True)
            # chunk_count keeps describing the indexed (old) content until the new job succeeds.
            document = await conn.fetchrow(
                "INSERT INTO documents (document_id, tenant_id, filename, content_type, content_hash,"  # noqa: S608
                " size_bytes, blob_key, metadata, chunk_count, latest_job_id, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 0, $9, now(), now())"
                " ON CONFLICT (tenant_id, filename) DO UPDATE SET content_type = EXCLUDED.content_type,"
                " content_hash = EXCLUDED.content_hash, size_bytes = EXCLUDED.size_bytes,"
                " blob_key = EXCLUDED.blob_key, metadata = EXCLUDED.metadata,"
                " latest_job_id = EXCLUDED.latest_job_id, updated_at = now()"
                f" RETURNING {_DOCUMENT_COLUMNS}",
                new_id(),
                upload.tenant_id,
                upload.filename,
                upload.content_type,
                upload.content_hash,
                upload.size_bytes,
                upload.blob_key,
                metadata,
                job_id,
            )
            job = await conn.fetchrow(
                "INSERT INTO jobs (job_id, tenant_id, document_id, state, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, now(), now()) RETURNING *, $5::text AS filename",
                job_id,
                upload.tenant_id,
                document["document_id"],
                JobState.QUEUED.value,
                upload.filename,
            )
            return UploadOutcome(ROWS.document(document), ROWS.job(job), deduplicated=False)

    async def get_document(self, tenant_id: str, document_id: str) -> Document:
        async with self._connection() as conn:
            return ROWS.document(await _require_document(conn, tenant_id, document_id))

    async def list_documents(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Document]:
        return await self._page(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = $1",  # noqa: S608
            [tenant_id],
            "created_at",
            "document_id",
            limit,
            cursor,
            ROWS.document,
            lambda d: (d.created_at, d.document_id),
        )

    async def delete_document(self, tenant_id: str, document_id: str) -> Document:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                f"DELETE FROM documents WHERE document_id = $1 AND tenant_id = $2 RETURNING {_DOCUMENT_COLUMNS}",  # noqa: S608
                document_id,
                tenant_id,
            )
            if row is None:
                raise _document_not_found(document_id)
            # Jobs go with it (ON DELETE CASCADE).
            await _bump_corpus_version(conn, tenant_id)
            return ROWS.document(row)

    async def get_job(self, tenant_id: str, job_id: str) -> Job:
        async with self._connection() as conn:
            job = await _fetch_job(conn, job_id)
        if job is None or job.tenant_id != tenant_id:
            raise _job_not_found(job_id)
        return job

    async def get_job_any_tenant(self, job_id: str) -> Job:
        async with self._connection() as conn:
            return await _require_job(conn, job_id)

    async def list_jobs(self, tenant_id: str, state: JobState | None, limit: int, cursor: str = "") -> Page[Job]:
        sql = _JOB_SELECT + " WHERE j.tenant_id = $1"
        params: list[Any] = [tenant_id]
        if state is not None:
            sql += " AND j.state = $2"
            params.append(state.value)
        return await self._page(
            sql, params, "j.created_at", "j.job_id", limit, cursor, ROWS.job, lambda j: (j.created_at, j.job_id)
        )

    async def start_job(self, job_id: str) -> Job:
        """QUEUED/RUNNING -> RUNNING with attempts + 1. A job already SUCCEEDED or FAILED is
        returned unchanged, so a worker holding a redelivered message sees that and acks it.
        One statement (one round trip)."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "WITH updated AS (UPDATE jobs SET state = 'RUNNING', attempts = attempts + 1, updated_at = now()"  # noqa: S608
                " WHERE job_id = $1 AND state IN ('QUEUED', 'RUNNING') RETURNING *)"
                f" {_UPDATED_JOB_SELECT}"
                f" UNION ALL {_JOB_SELECT} WHERE j.job_id = $1 AND NOT EXISTS (SELECT 1 FROM updated)",
                job_id,
            )
        if row is None:
            raise _job_not_found(job_id)
        return ROWS.job(row)

    async def claim_jobs(self, claims: Sequence[tuple[str, int | None]]) -> list[JobClaim | None]:
        """One statement (one round trip) for every job, where a worker used three per job (read
        the job, read its document, start it): every part of it sees the rows as they were
        before the update."""
        if not claims:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                _CLAIM_JOBS,
                [job_id for job_id, _ in claims],
                [_INT_MAX if below is None else below for _, below in claims],
            )
        found: list[JobClaim | None] = [None] * len(claims)
        for row in rows:
            found[int(row["n"]) - 1] = _claim(row)
        return found

    async def set_job_progress(self, job_id: str, chunks_total: int, chunks_done: int) -> None:
        async with self._connection() as conn:
            status = await conn.execute(
                "UPDATE jobs SET chunks_total = $2, chunks_done = $3, updated_at = now() WHERE job_id = $1",
                job_id,
                chunks_total,
                chunks_done,
            )
        if status == "UPDATE 0":
            raise _job_not_found(job_id)

    async def succeed_job(self, job_id: str, chunk_count: int) -> Job:
        [job] = await self._succeed([(job_id, chunk_count)], _SUCCEED_JOBS)
        if job is None:
            raise _job_not_found(job_id)
        return job

    async def succeed_latest_jobs(self, jobs: Sequence[tuple[str, int]]) -> list[Job | None]:
        return await self._succeed(jobs, _SUCCEED_LATEST_JOBS)

    async def _succeed(self, jobs: Sequence[tuple[str, int]], sql: str) -> list[Job | None]:
        """One statement (atomic on its own, one round trip) for every job; None for a job it
        left alone (gone, or superseded when `sql` asks for the latest only)."""
        if not jobs:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                sql,
                [job_id for job_id, _ in jobs],
                [count for _, count in jobs],
            )
        succeeded = {str(row["job_id"]): ROWS.job(row) for row in rows}
        return [succeeded.get(job_id) for job_id, _ in jobs]

    async def fail_job(self, job_id: str, error: str) -> Job:
        return await self._set_state(job_id, JobState.FAILED, error)

    async def requeue_job(self, job_id: str, error: str) -> Job:
        return await self._set_state(job_id, JobState.QUEUED, error)

    async def count_jobs(self, state: JobState) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM jobs WHERE state = $1", state.value))

    async def stale_unfinished_jobs(self, idle_since: datetime, limit: int) -> list[Job]:
        sql = _JOB_SELECT + " WHERE j.state IN ($1, $2) AND j.updated_at < $3 ORDER BY j.updated_at LIMIT $4"
        async with self._connection() as conn:
            rows = await conn.fetch(sql, JobState.QUEUED.value, JobState.RUNNING.value, idle_since, limit)
        return [ROWS.job(row) for row in rows]

    async def touch_stale_job(self, job_id: str, seen_updated_at: datetime) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(
                "UPDATE jobs SET updated_at = now() WHERE job_id = $1 AND state IN ($2, $3) AND updated_at = $4",
                job_id,
                JobState.QUEUED.value,
                JobState.RUNNING.value,
                seen_updated_at,
            )
        return bool(status != "UPDATE 0")

    async def corpus_version(self, tenant_id: str) -> int:
        async with self._connection() as conn:
            value = await conn.fetchval("SELECT version FROM corpus_versions WHERE tenant_id = $1", tenant_id)
        return int(value) if value is not None else 0

    # --- conversations -----------------------------------------------------------------------
    async def create_conversation(self, tenant_id: str, title: str) -> Conversation:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO conversations (conversation_id, tenant_id, title, turn_count, created_at, updated_at)"
                " VALUES ($1, $2, $3, 0, now(), now()) RETURNING *",
                new_id(),
                tenant_id,
                title,
            )
        assert row is not None  # RETURNING of a successful insert
        return ROWS.conversation(row)

    async def append_turns(self, tenant_id: str, conversation_id: str, turns: list[Turn]) -> Conversation:
        # One statement (its own transaction): the UPDATE locks the conversation's row, so
        # concurrent appends queue there and each numbers its turns after the count the
        # previous one wrote; the turns go in from arrays in the same statement.
        async with self._connection() as conn:
            row = await conn.fetchrow(  # the f-string below adds placeholders only
                "WITH updated AS ("  # noqa: S608
                "  UPDATE conversations SET turn_count = turn_count + $3, updated_at = now()"
                "  WHERE conversation_id = $1 AND tenant_id = $2 RETURNING *"
                "), inserted AS ("
                "  INSERT INTO turns (conversation_id, seq, role, content, citations, created_at)"
                "  SELECT u.conversation_id, u.turn_count - $3 + t.ord::integer - 1, t.role, t.content,"
                "         t.citations::jsonb, COALESCE(t.created_at, now())"
                f"  FROM updated u, {_unnest_turns(4)}"
                ") SELECT * FROM updated",
                conversation_id,
                tenant_id,
                len(turns),
                *_turn_arrays(turns),
            )
        if row is None:
            raise _conversation_not_found(conversation_id)
        return ROWS.conversation(row)

    async def start_conversation(self, tenant_id: str, title: str, turns: list[Turn]) -> Conversation:
        async with self._connection() as conn:
            row = await conn.fetchrow(  # the f-string below adds placeholders only
                "WITH created AS ("  # noqa: S608
                "  INSERT INTO conversations (conversation_id, tenant_id, title, turn_count, created_at, updated_at)"
                "  VALUES ($1, $2, $3, $4, now(), now()) RETURNING *"
                "), inserted AS ("
                "  INSERT INTO turns (conversation_id, seq, role, content, citations, created_at)"
                "  SELECT c.conversation_id, t.ord::integer - 1, t.role, t.content, t.citations::jsonb,"
                "         COALESCE(t.created_at, now())"
                f"  FROM created c, {_unnest_turns(5)}"
                ") SELECT * FROM created",
                new_id(),
                tenant_id,
                title,
                len(turns),
                *_turn_arrays(turns),
            )
        assert row is not None  # RETURNING of a successful insert
        return ROWS.conversation(row)

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        async with self._connection() as conn:
            return ROWS.conversation(await _require_conversation(conn, tenant_id, conversation_id))

    async def get_turns(self, tenant_id: str, conversation_id: str, max_turns: int = 0) -> list[Turn]:
        # One statement, so one snapshot without a transaction (it was BEGIN, a check that the
        # tenant has the conversation, the turns, COMMIT: four round trips, each two without a
        # statement cache): the conversation's row joined to its latest turns. No row at all: the
        # tenant has no such conversation; one row of NULLs: a conversation without turns.
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT t.role, t.content, t.citations::text AS citations, t.created_at"
                " FROM conversations c LEFT JOIN LATERAL ("
                "  SELECT seq, role, content, citations, created_at FROM turns"
                "  WHERE turns.conversation_id = c.conversation_id ORDER BY seq DESC LIMIT $3"
                ") t ON true WHERE c.conversation_id = $1 AND c.tenant_id = $2 ORDER BY t.seq DESC",
                conversation_id,
                tenant_id,
                max_turns if max_turns > 0 else None,  # LIMIT NULL: every turn
            )
        if not rows:
            raise _conversation_not_found(conversation_id)
        return [ROWS.turn(row) for row in reversed(rows) if row["role"] is not None]

    async def list_conversations(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Conversation]:
        return await self._page(
            "SELECT * FROM conversations WHERE tenant_id = $1",
            [tenant_id],
            "created_at",
            "conversation_id",
            limit,
            cursor,
            ROWS.conversation,
            lambda c: (c.created_at, c.conversation_id),
        )

    # --- API keys ----------------------------------------------------------------------------
    async def create_api_key(self, tenant_id: str, name: str, key_hash: str) -> ApiKey:
        async with self._connection() as conn:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO api_keys (key_id, tenant_id, name, key_hash, revoked, created_at)"
                    " VALUES ($1, $2, $3, $4, false, now()) RETURNING *",
                    new_id(),
                    tenant_id,
                    name,
                    key_hash,
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists("an API key with this secret exists already; generate a new key") from None
        assert row is not None
        return ROWS.api_key(row)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", key_hash)
        return ROWS.api_key(row) if row else None

    async def list_api_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        async with self._connection() as conn:
            if tenant_id is None:
                rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, key_id")
            else:
                rows = await conn.fetch(
                    "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id", tenant_id
                )
        return [ROWS.api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        async with self._connection() as conn:
            row = await conn.fetchrow("UPDATE api_keys SET revoked = true WHERE key_id = $1 RETURNING *", key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} was not found; list the keys to see their ids")
        return ROWS.api_key(row)

    async def api_key_revision(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM api_keys WHERE revoked"))

    # --- helpers -----------------------------------------------------------------------------
    async def _set_state(self, job_id: str, state: JobState, error: str) -> Job:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "WITH updated AS (UPDATE jobs SET state = $2, error = $3, updated_at = now() WHERE job_id = $1"  # noqa: S608
                f" RETURNING *) {_UPDATED_JOB_SELECT}",
                job_id,
                state.value,
                error,
            )
        if row is None:
            raise _job_not_found(job_id)
        return ROWS.job(row)

    async def _page(
        self,
        base_sql: str,
        params: list[Any],
        created_column: str,
        id_column: str,
        limit: int,
        cursor: str,
        convert: Callable[[asyncpg.Record], T],
        position: Callable[[T], tuple[Any, str]],
    ) -> Page[T]:
        """Keyset pagination, newest first: one row more than asked tells whether a page follows."""
        limit = clamp_limit(limit)
        sql, args = base_sql, list(params)
        if cursor:
            created_at, item_id = decode_cursor(cursor)
            n = len(args)
            sql += f" AND ({created_column}, {id_column}) < (${n + 1}::timestamptz, ${n + 2}::text)"
            args += [created_at, item_id]
        sql += f" ORDER BY {created_column} DESC, {id_column} DESC LIMIT ${len(args) + 1}"
        args.append(limit + 1)
        async with self._connection() as conn:
            rows = await conn.fetch(sql, *args)
        items = [convert(row) for row in rows[:limit]]
        next_cursor = encode_cursor(*position(items[-1])) if len(rows) > limit else ""
        return Page(items=items, next_cursor=next_cursor)


async def migrate(settings: StoreSettings) -> list[int]:
    """Apply pending migrations to RAG_STORE_URL's database and return the versions applied (for
    `ragplatform migrate`; services migrate at start-up when RAG_STORE_MIGRATE is true).
    Migrations may take longer than a request, so the statement timeout here is generous."""
    url = dsn(settings)
    password = settings.store_password
    try:
        conn = await asyncpg.connect(
            url,
            password=password.get_secret_value() if password else None,
            statement_cache_size=0,
            timeout=settings.store_timeout_seconds,
            command_timeout=max(settings.store_timeout_seconds, 300.0),
        )
    except Exception as exc:
        if is_unavailable_error(exc):
            raise unavailable_error(url, exc) from exc
        raise
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


# --- row conversion and lookups ----------------------------------------------------------------
def _claim(row: asyncpg.Record) -> JobClaim:
    """A `_CLAIM_JOBS` row as the claim it describes."""
    job = ROWS.job(row)
    document = ROWS.document({name[2:]: value for name, value in row.items() if name.startswith("d_")})
    started = None
    if row["s_attempts"] is not None:
        started = replace(job, state=JobState.RUNNING, attempts=int(row["s_attempts"]), updated_at=row["s_updated_at"])
    return JobClaim(job, document, started)


def _job_not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} was not found (or its document was deleted); list jobs to see current ones")


def _document_not_found(document_id: str) -> NotFound:
    return NotFound(f"document {document_id!r} was not found; list documents to see the ones that exist")


def _conversation_not_found(conversation_id: str) -> NotFound:
    return NotFound(f"conversation {conversation_id!r} was not found; start a new one or list conversations")


def _unnest_turns(first: int) -> str:
    """Turns as four parallel array parameters from `$first` on (role, content, citations JSON,
    created_at or NULL), unnested in order as `t` with their position `ord` (from 1)."""
    a, b, c, d = (f"${first + i}" for i in range(4))
    return (
        f"unnest({a}::text[], {b}::text[], {c}::text[], {d}::timestamptz[])"
        " WITH ORDINALITY AS t(role, content, citations, created_at, ord)"
    )


def _turn_arrays(turns: list[Turn]) -> tuple[list[str], list[str], list[str], list[datetime | None]]:
    return (
        [turn.role.value for turn in turns],
        [turn.content for turn in turns],
        [citations_to_json(turn.citations) for turn in turns],
        [turn.created_at for turn in turns],
    )


async def _fetch_job(conn: asyncpg.Connection, job_id: str) -> Job | None:
    row = await conn.fetchrow(_JOB_SELECT + " WHERE j.job_id = $1", job_id)
    return ROWS.job(row) if row else None


async def _require_job(conn: asyncpg.Connection, job_id: str) -> Job:
    job = await _fetch_job(conn, job_id)
    if job is None:
        raise _job_not_found(job_id)
    return job


async def _require_document(conn: asyncpg.Connection, tenant_id: str, document_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE document_id = $1 AND tenant_id = $2",  # noqa: S608
        document_id,
        tenant_id,
    )
    if row is None:
        raise _document_not_found(document_id)
    return row


async def _require_conversation(conn: asyncpg.Connection, tenant_id: str, conversation_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM conversations WHERE conversation_id = $1 AND tenant_id = $2", conversation_id, tenant_id
    )
    if row is None:
        raise _conversation_not_found(conversation_id)
    return row


async def _bump_corpus_version(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute(
        "INSERT INTO corpus_versions (tenant_id, version) VALUES ($1, 1)"
        " ON CONFLICT (tenant_id) DO UPDATE SET version = corpus_versions.version + 1",
        tenant_id,
    )
