-- Documents, jobs, conversations, turns, API keys and corpus versions.
-- Ids are text (UUIDs as strings, as the SQLite store writes them); times are timestamptz.
-- Every index below serves a named query path in postgres.py.

CREATE TABLE documents (
    document_id   text PRIMARY KEY,
    tenant_id     text NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    content_hash  text NOT NULL,
    size_bytes    bigint NOT NULL,
    blob_key      text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    chunk_count   integer NOT NULL DEFAULT 0,
    latest_job_id text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- record_upload: the document named (tenant, filename)
    CONSTRAINT documents_tenant_filename UNIQUE (tenant_id, filename)
);
-- record_upload: deduplicate on (tenant, content hash)
CREATE INDEX documents_by_hash ON documents (tenant_id, content_hash);
-- list_documents: keyset pages, newest first
CREATE INDEX documents_by_age ON documents (tenant_id, created_at DESC, document_id DESC);

CREATE TABLE jobs (
    job_id       text PRIMARY KEY,
    tenant_id    text NOT NULL,
    document_id  text NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
    state        text NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error        text NOT NULL DEFAULT '',
    attempts     integer NOT NULL DEFAULT 0,
    chunks_total integer NOT NULL DEFAULT 0,
    chunks_done  integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- list_jobs without a state filter
CREATE INDEX jobs_by_age ON jobs (tenant_id, created_at DESC, job_id DESC);
-- list_jobs filtered on state
CREATE INDEX jobs_by_state_and_age ON jobs (tenant_id, state, created_at DESC, job_id DESC);
-- count_jobs (the queue-depth and backlog metrics), across tenants
CREATE INDEX jobs_by_state ON jobs (state);
-- delete_document's cascade
CREATE INDEX jobs_by_document ON jobs (document_id);

CREATE TABLE conversations (
    conversation_id text PRIMARY KEY,
    tenant_id       text NOT NULL,
    title           text NOT NULL,
    turn_count      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- list_conversations
CREATE INDEX conversations_by_age ON conversations (tenant_id, created_at DESC, conversation_id DESC);

CREATE TABLE turns (
    conversation_id text NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    role            text NOT NULL,
    content         text NOT NULL,
    citations       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL,
    -- get_turns: the most recent turns of a conversation (backward scan)
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE api_keys (
    key_id     text PRIMARY KEY,
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    -- find_api_key (every gateway request that misses the gateway's short in-process cache)
    key_hash   text NOT NULL UNIQUE,
    revoked    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);
-- list_api_keys for one tenant
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, key_id);

CREATE TABLE corpus_versions (
    tenant_id text PRIMARY KEY,
    version   bigint NOT NULL
);
