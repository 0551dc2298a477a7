"""The embedded SQLite schema, as ordered migrations.

One database file holds the store (documents, jobs, conversations, API keys) and the job queue,
so one version table covers both. Migrations only ever get appended: a released migration is
never edited, because files in the field already carry it.
Times are integer microseconds since the Unix epoch (UTC): exact, sortable, no parsing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "documents, jobs, conversations, turns, API keys, corpus versions",
        (
            """CREATE TABLE documents (
                document_id   TEXT PRIMARY KEY,
                tenant_id     TEXT NOT NULL,
                filename      TEXT NOT NULL,
                content_type  TEXT NOT NULL,
                content_hash  TEXT NOT NULL,
                size_bytes    INTEGER NOT NULL,
                blob_key      TEXT NOT NULL,
                metadata      TEXT NOT NULL DEFAULT '{}',
                chunk_count   INTEGER NOT NULL DEFAULT 0,
                latest_job_id TEXT NOT NULL DEFAULT '',
                created_at    INTEGER NOT NULL,
                updated_at    INTEGER NOT NULL,
                UNIQUE (tenant_id, filename)
            )""",
            "CREATE INDEX documents_by_hash ON documents (tenant_id, content_hash)",
            "CREATE INDEX documents_by_age ON documents (tenant_id, created_at DESC, document_id DESC)",
            """CREATE TABLE jobs (
                job_id       TEXT PRIMARY KEY,
                tenant_id    TEXT NOT NULL,
                document_id  TEXT NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
                state        TEXT NOT NULL,
                error        TEXT NOT NULL DEFAULT '',
                attempts     INTEGER NOT NULL DEFAULT 0,
                chunks_total INTEGER NOT NULL DEFAULT 0,
                chunks_done  INTEGER NOT NULL DEFAULT 0,
                created_at   INTEGER NOT NULL,
                updated_at   INTEGER NOT NULL
            )""",
            "CREATE INDEX jobs_by_age ON jobs (tenant_id, created_at DESC, job_id DESC)",
            "CREATE INDEX jobs_by_state ON jobs (state)",
            "CREATE INDEX jobs_by_document ON jobs (document_id)",
            """CREATE TABLE conversations (
                conversation_id TEXT PRIMARY KEY,
                tenant_id       TEXT NOT NULL,
                title           TEXT NOT NULL,
                turn_count      INTEGER NOT NULL DEFAULT 0,
                created_at      INTEGER NOT NULL,
                updated_at      INTEGER NOT NULL
            )""",
            "CREATE INDEX conversations_by_age ON conversations (tenant_id, created_at DESC, conversation_id DESC)",
            """CREATE TABLE turns (
                conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
                seq             INTEGER NOT NULL,
                role            TEXT NOT NULL,
                content         TEXT NOT NULL,
                citations       TEXT NOT NULL DEFAULT '[]',
                created_at      INTEGER NOT NULL,
                PRIMARY KEY (conversation_id, seq)
            ) WITHOUT ROWID""",
            """CREATE TABLE api_keys (
                key_id     TEXT PRIMARY KEY,
                tenant_id  TEXT NOT NULL,
                name       TEXT NOT NULL,
                key_hash   TEXT NOT NULL UNIQUE,
                revoked    INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL
            )""",
            "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at)",
            """CREATE TABLE corpus_versions (
                tenant_id TEXT PRIMARY KEY,
                version   INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "job queue: messages and dead letters",
        (
            # seq gives first-in first-out order among visible messages.
            """CREATE TABLE queue_messages (
                seq            INTEGER PRIMARY KEY AUTOINCREMENT,
                message_id     TEXT NOT NULL UNIQUE,
                queue          TEXT NOT NULL,
                job_id         TEXT NOT NULL,
                tenant_id      TEXT NOT NULL,
                delivery_count INTEGER NOT NULL DEFAULT 0,
                visible_at     INTEGER NOT NULL,
                consumer       TEXT NOT NULL DEFAULT '',
                enqueued_at    INTEGER NOT NULL
            )""",
            "CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at, seq)",
            """CREATE TABLE dead_letters (
                seq            INTEGER PRIMARY KEY AUTOINCREMENT,
                message_id     TEXT NOT NULL UNIQUE,
                queue          TEXT NOT NULL,
                job_id         TEXT NOT NULL,
                tenant_id      TEXT NOT NULL,
                delivery_count INTEGER NOT NULL,
                reason         TEXT NOT NULL,
                dead_at        INTEGER NOT NULL
            )""",
            "CREATE INDEX dead_letters_by_queue ON dead_letters (queue, seq)",
        ),
    ),
    Migration(
        3,
        "job queue: the uploading call's trace context",
        ("ALTER TABLE queue_messages ADD COLUMN traceparent TEXT NOT NULL DEFAULT ''",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
