"""Proto <-> domain conversions, shared by every servicer and client (one place, not per service)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ragplatform.core.redaction import hide_endpoints
from ragplatform.domain.models import (
    ChunkPoint,
    Citation,
    Conversation,
    Document,
    Job,
    JobState,
    Role,
    ScoredPassage,
    TokenUsage,
    Turn,
)
from ragplatform.v1 import common_pb2, retrieval_pb2

_JOB_STATES = {
    JobState.QUEUED: common_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: common_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: common_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: common_pb2.JOB_STATE_FAILED,
}
_JOB_STATES_BACK = {v: k for k, v in _JOB_STATES.items()}
_ROLES = {Role.USER: common_pb2.ROLE_USER, Role.ASSISTANT: common_pb2.ROLE_ASSISTANT}
_ROLES_BACK = {v: k for k, v in _ROLES.items()}


def timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def job_state_to_proto(state: JobState) -> common_pb2.JobState.ValueType:
    return _JOB_STATES[state]


def job_state_from_proto(value: common_pb2.JobState.ValueType) -> JobState | None:
    """None for JOB_STATE_UNSPECIFIED (meaning "any state" in list filters)."""
    return _JOB_STATES_BACK.get(value)


def document_to_proto(doc: Document) -> common_pb2.Document:
    return common_pb2.Document(
        document_id=doc.document_id,
        tenant_id=doc.tenant_id,
        filename=doc.filename,
        content_type=doc.content_type,
        content_hash=doc.content_hash,
        size_bytes=doc.size_bytes,
        metadata=doc.metadata,
        chunk_count=doc.chunk_count,
        created_at=timestamp(doc.created_at),
        updated_at=timestamp(doc.updated_at),
        latest_job_id=doc.latest_job_id,
    )


def job_to_proto(job: Job) -> common_pb2.Job:
    return common_pb2.Job(
        job_id=job.job_id,
        tenant_id=job.tenant_id,
        document_id=job.document_id,
        state=job_state_to_proto(job.state),
        error=hide_endpoints(job.error),  # the worker's log holds the address
        attempts=job.attempts,
        chunks_total=job.chunks_total,
        chunks_done=job.chunks_done,
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        filename=job.filename,
    )


def passage_to_proto(p: ScoredPassage) -> common_pb2.Passage:
    return common_pb2.Passage(
        chunk_id=p.chunk_id,
        document_id=p.document_id,
        filename=p.filename,
        chunk_index=p.chunk_index,
        text=p.text,
        score=p.score,
        metadata=p.metadata,
    )


def passage_from_proto(p: common_pb2.Passage) -> ScoredPassage:
    return ScoredPassage(
        chunk_id=p.chunk_id,
        document_id=p.document_id,
        filename=p.filename,
        chunk_index=p.chunk_index,
        text=p.text,
        score=p.score,
        metadata=dict(p.metadata),
    )


def citation_to_proto(c: Citation) -> common_pb2.Citation:
    return common_pb2.Citation(
        index=c.index,
        document_id=c.document_id,
        filename=c.filename,
        chunk_id=c.chunk_id,
        quote=c.quote,
        score=c.score,
        inferred=c.inferred,
    )


def citation_from_proto(c: common_pb2.Citation) -> Citation:
    return Citation(
        index=c.index,
        document_id=c.document_id,
        filename=c.filename,
        chunk_id=c.chunk_id,
        quote=c.quote,
        score=c.score,
        inferred=c.inferred,
    )


def usage_to_proto(u: TokenUsage) -> common_pb2.TokenUsage:
    return common_pb2.TokenUsage(
        prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens
    )


def usage_from_proto(u: common_pb2.TokenUsage) -> TokenUsage:
    return TokenUsage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens)


def turn_to_proto(t: Turn) -> common_pb2.Turn:
    return common_pb2.Turn(
        role=_ROLES[t.role],
        content=t.content,
        citations=[citation_to_proto(c) for c in t.citations],
        created_at=timestamp(t.created_at),
    )


def turn_from_proto(t: common_pb2.Turn) -> Turn:
    return Turn(
        role=_ROLES_BACK.get(t.role, Role.USER),
        content=t.content,
        citations=tuple(citation_from_proto(c) for c in t.citations),
        created_at=from_timestamp(t.created_at),
    )


def conversation_to_proto(c: Conversation) -> common_pb2.Conversation:
    return common_pb2.Conversation(
        conversation_id=c.conversation_id,
        tenant_id=c.tenant_id,
        title=c.title,
        created_at=timestamp(c.created_at),
        updated_at=timestamp(c.updated_at),
        turn_count=c.turn_count,
    )


def chunks_to_proto(
    document: Document, points: list[ChunkPoint], embedding_model: str = ""
) -> retrieval_pb2.UpsertChunksRequest:
    """One document's embedded chunks, made by `embedding_model`, as the retrieval service takes them."""
    return retrieval_pb2.UpsertChunksRequest(
        embedding_model=embedding_model,
        tenant_id=document.tenant_id,
        document_id=document.document_id,
        filename=document.filename,
        metadata=document.metadata,
        content_hash=document.content_hash,
        chunks=[
            retrieval_pb2.IndexedChunk(chunk_index=p.chunk_index, text=p.text, vector=p.vector, heading=p.heading)
            for p in points
        ],
    )


def chunks_from_proto(request: retrieval_pb2.UpsertChunksRequest) -> list[ChunkPoint]:
    """One document's chunks (`chunks_to_proto`'s message) as the domain's points."""
    metadata = dict(request.metadata)
    return [
        ChunkPoint(
            tenant_id=request.tenant_id,
            document_id=request.document_id,
            filename=request.filename,
            chunk_index=chunk.chunk_index,
            text=chunk.text,
            vector=list(chunk.vector),
            content_hash=request.content_hash,
            metadata=metadata,
            heading=chunk.heading,
        )
        for chunk in request.chunks
    ]
