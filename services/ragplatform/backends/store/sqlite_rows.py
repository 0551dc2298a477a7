"""Rows of the embedded SQLite schema -> domain objects (and citations -> their JSON column)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ragplatform.backends.store.pagination import from_microseconds
from ragplatform.domain.models import ApiKey, Citation, Conversation, Document, Job, JobState, Role, Turn


def document_from_row(row: sqlite3.Row) -> Document:
    return Document(
        document_id=row["document_id"],
        tenant_id=row["tenant_id"],
        filename=row["filename"],
        content_type=row["content_type"],
        content_hash=row["content_hash"],
        size_bytes=int(row["size_bytes"]),
        blob_key=row["blob_key"],
        metadata=dict(json.loads(row["metadata"])),
        chunk_count=int(row["chunk_count"]),
        created_at=from_microseconds(row["created_at"]),
        updated_at=from_microseconds(row["updated_at"]),
        latest_job_id=row["latest_job_id"],
    )


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"],
        tenant_id=row["tenant_id"],
        document_id=row["document_id"],
        state=JobState(row["state"]),
        error=row["error"],
        attempts=int(row["attempts"]),
        chunks_total=int(row["chunks_total"]),
        chunks_done=int(row["chunks_done"]),
        created_at=from_microseconds(row["created_at"]),
        updated_at=from_microseconds(row["updated_at"]),
        filename=row["filename"],
    )


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    return Conversation(
        conversation_id=row["conversation_id"],
        tenant_id=row["tenant_id"],
        title=row["title"],
        created_at=from_microseconds(row["created_at"]),
        updated_at=from_microseconds(row["updated_at"]),
        turn_count=int(row["turn_count"]),
    )


def turn_from_row(row: sqlite3.Row) -> Turn:
    return Turn(
        role=Role(row["role"]),
        content=row["content"],
        citations=tuple(Citation(**item) for item in json.loads(row["citations"])),
        created_at=from_microseconds(row["created_at"]),
    )


def citations_to_json(citations: Sequence[Citation]) -> str:
    return json.dumps(
        [
            {
                "index": c.index,
                "document_id": c.document_id,
                "filename": c.filename,
                "chunk_id": c.chunk_id,
                "quote": c.quote,
                "score": c.score,
            }
            for c in citations
        ]
    )


def api_key_from_row(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        created_at=from_microseconds(row["created_at"]),
        revoked=bool(row["revoked"]),
    )
