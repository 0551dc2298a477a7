"""The relational store: documents, jobs, conversations and API keys.

Adapters: `sqlite.py` (embedded default), `postgres.py` (production, through PgBouncer).
Every method is scoped to a tenant where the data is; a wrong tenant looks like "not found".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply the schema if asked to by settings. Idempotent."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `Unavailable` if the store cannot answer now."""

    # --- documents and jobs -------------------------------------------------------------
    async def record_upload(self, upload: NewUpload) -> UploadOutcome:
        """In one transaction: dedupe on (tenant, content hash) -> existing document and its
        latest job, `deduplicated=True`, unless that job FAILED (then a new job is queued);
        otherwise create or update the document named (tenant, filename) and create a QUEUED
        job for it. A document created by this upload and its job get the same `created_at`
        (workers rely on it: such a job's document holds no older chunks)."""

    async def get_document(self, tenant_id: str, document_id: str) -> Document:
        """Raise `NotFound` if missing or another tenant's."""

    async def list_documents(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Document]: ...

    async def delete_document(self, tenant_id: str, document_id: str) -> Document:
        """Delete the document and its jobs; return it as it was. Raise `NotFound`."""

    async def get_job(self, tenant_id: str, job_id: str) -> Job: ...

    async def get_job_any_tenant(self, job_id: str) -> Job:
        """For workers, which receive only a job id from the queue."""

    async def list_jobs(self, tenant_id: str, state: JobState | None, limit: int, cursor: str = "") -> Page[Job]: ...

    async def start_job(self, job_id: str) -> Job:
        """QUEUED/RUNNING -> RUNNING, attempts + 1. Raise `NotFound` if the job is gone."""

    async def claim_jobs(self, claims: Sequence[tuple[str, int | None]]) -> list[JobClaim | None]:
        """For workers: per (job id, attempts_below), read the job and its document and start an
        attempt, atomically (one statement for them all where the store allows). The attempt
        starts (QUEUED/RUNNING -> RUNNING, attempts + 1) only if the job is QUEUED or RUNNING,
        the document's latest job is this one (or unset), and fewer than `attempts_below`
        attempts started (None: no bound); `JobClaim.job` is the job as it was before. One
        result per job, in order: None for a job that is gone. Job ids must be distinct."""

    async def set_job_progress(self, job_id: str, chunks_total: int, chunks_done: int) -> None: ...

    async def succeed_job(self, job_id: str, chunk_count: int) -> Job:
        """RUNNING -> SUCCEEDED and the document's chunk_count set, in one transaction."""

    async def succeed_latest_jobs(self, jobs: Sequence[tuple[str, int]]) -> list[Job | None]:
        """`succeed_job` for each (job id, chunk count), but only while the job is its
        document's latest (the document was not uploaded again since): one result per job, in
        order, None for a job left alone (superseded or gone). One round trip for them all
        where the store allows. Job ids must be distinct."""

    async def fail_job(self, job_id: str, error: str) -> Job:
        """-> FAILED with a reason a person can act on."""

    async def requeue_job(self, job_id: str, error: str) -> Job:
        """-> QUEUED again (a retry is coming), keeping the last error for display."""

    async def count_jobs(self, state: JobState) -> int: ...

    async def stale_unfinished_jobs(self, idle_since: datetime, limit: int) -> list[Job]:
        """QUEUED and RUNNING jobs (any tenant) not updated since `idle_since`, oldest update
        first: the candidates for a lost queue message."""

    async def touch_stale_job(self, job_id: str, seen_updated_at: datetime) -> bool:
        """Bump an unfinished job's `updated_at` if it is still as seen (QUEUED or RUNNING,
        updated at `seen_updated_at`); True when this call did it. Of several sweepers racing for
        one job, exactly one wins."""

    async def corpus_version(self, tenant_id: str) -> int:
        """A counter that grows whenever the tenant's searchable documents change (a job
        succeeds, a document is deleted); 0 for a tenant with none. The answer cache keys on it."""

    # --- conversations -------------------------------------------------------------------
    async def create_conversation(self, tenant_id: str, title: str) -> Conversation: ...

    async def append_turns(self, tenant_id: str, conversation_id: str, turns: list[Turn]) -> Conversation:
        """Append atomically. Raise `NotFound`."""

    async def start_conversation(self, tenant_id: str, title: str, turns: list[Turn]) -> Conversation:
        """A new conversation that already holds `turns`, created atomically (an Ask's first
        exchange: one round trip where create-then-append would take two)."""

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation: ...

    async def get_turns(self, tenant_id: str, conversation_id: str, max_turns: int = 0) -> list[Turn]:
        """Oldest first; only the most recent `max_turns` when > 0."""

    async def list_conversations(self, tenant_id: str, limit: int, cursor: str = "") -> Page[Conversation]: ...

    # --- API keys --------------------------------------------------------------------------
    async def create_api_key(self, tenant_id: str, name: str, key_hash: str) -> ApiKey: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, or None (revoked keys are returned with revoked=True)."""

    async def list_api_keys(self, tenant_id: str | None = None) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str) -> ApiKey: ...

    async def api_key_revision(self) -> int:
        """A number that changes whenever a key is revoked (gateways poll it to drop their key
        caches at once instead of waiting for the cache entries to expire)."""
