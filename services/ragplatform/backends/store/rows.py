"""Store rows -> domain objects, shared by the SQLite and PostgreSQL adapters (same column
names in both schemas). Only timestamps differ: SQLite keeps microseconds since the epoch,
PostgreSQL `timestamptz`; each adapter builds a `RowReader` with its own conversion."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from ragplatform.domain.models import ApiKey, Citation, Conversation, Document, Job, JobState, Role, Turn


class Row(Protocol):
    """What both drivers' rows offer (sqlite3.Row, asyncpg.Record): lookup by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


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
                "inferred": c.inferred,
            }
            for c in citations
        ]
    )


class RowReader:
    def __init__(self, timestamp: Callable[[Any], datetime]) -> None:
        self._ts = timestamp

    def document(self, row: Row) -> Document:
        return Document(
            document_id=row["document_id"],
            tenant_id=row["tenant_id"],
            filename=row["filename"],
            content_type=row["content_type"],
            content_hash=row["content_hash"],
            size_bytes=int(row["size_bytes"]),
            blob_key=row["blob_key"],
            metadata={str(k): str(v) for k, v in json.loads(row["metadata"]).items()},
            chunk_count=int(row["chunk_count"]),
            created_at=self._ts(row["created_at"]),
            updated_at=self._ts(row["updated_at"]),
            latest_job_id=row["latest_job_id"],
        )

    def job(self, row: Row) -> Job:
        return Job(
            job_id=row["job_id"],
            tenant_id=row["tenant_id"],
            document_id=row["document_id"],
            state=JobState(row["state"]),
            error=row["error"],
            attempts=int(row["attempts"]),
            chunks_total=int(row["chunks_total"]),
            chunks_done=int(row["chunks_done"]),
            created_at=self._ts(row["created_at"]),
            updated_at=self._ts(row["updated_at"]),
            filename=row["filename"],
        )

    def conversation(self, row: Row) -> Conversation:
        return Conversation(
            conversation_id=row["conversation_id"],
            tenant_id=row["tenant_id"],
            title=row["title"],
            created_at=self._ts(row["created_at"]),
            updated_at=self._ts(row["updated_at"]),
            turn_count=int(row["turn_count"]),
        )

    def turn(self, row: Row) -> Turn:
        return Turn(
            role=Role(row["role"]),
            content=row["content"],
            citations=tuple(Citation(**item) for item in json.loads(row["citations"])),
            created_at=self._ts(row["created_at"]),
        )

    def api_key(self, row: Row) -> ApiKey:
        return ApiKey(
            key_id=row["key_id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            created_at=self._ts(row["created_at"]),
            revoked=bool(row["revoked"]),
        )
