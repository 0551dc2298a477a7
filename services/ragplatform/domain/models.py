"""Plain data types shared by services and backends."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

# Namespace for deterministic chunk point ids: uuid5(NAMESPACE, f"{tenant}:{document_id}:{chunk_index}").
CHUNK_ID_NAMESPACE = uuid.UUID("6f1c2f5e-8d0b-4b8e-9a54-3f0b1c7d2e11")


def chunk_point_id(tenant_id: str, document_id: str, chunk_index: int) -> str:
    """The vector store id of a chunk: the same document and index always give the same id,
    so re-indexing overwrites instead of duplicating. The tenant is part of it, so no write
    naming one tenant can ever replace another tenant's chunk."""
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{tenant_id}:{document_id}:{chunk_index}"))


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Document:
    document_id: str
    tenant_id: str
    filename: str
    content_type: str
    content_hash: str
    size_bytes: int
    blob_key: str
    metadata: dict[str, str]
    chunk_count: int
    created_at: datetime
    updated_at: datetime
    latest_job_id: str = ""


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant_id: str
    document_id: str
    state: JobState
    error: str
    attempts: int
    chunks_total: int
    chunks_done: int
    created_at: datetime
    updated_at: datetime
    filename: str = ""


@dataclass(frozen=True)
class JobClaim:
    """A worker's claim on a job (`Store.claim_jobs`): the job as it was before, its document, and
    the job as the claim left it if it started an attempt (None: it started none)."""

    job: Job
    document: Document
    started: Job | None


@dataclass(frozen=True)
class NewUpload:
    """What ingestion knows about an upload once its bytes are stored."""

    tenant_id: str
    filename: str
    content_type: str
    content_hash: str
    size_bytes: int
    blob_key: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadOutcome:
    document: Document
    job: Job
    deduplicated: bool


@dataclass(frozen=True)
class Chunk:
    """A piece of a parsed document, before embedding."""

    index: int
    text: str
    token_count: int
    # The document's heading (`domain.chunk_context`), and the section the chunk starts in when
    # the document marks sections; embedded and indexed with the text.
    heading: str = ""
    # Where `text` starts in the document's parsed text.
    offset: int = 0


@dataclass(frozen=True)
class ChunkPoint:
    """An embedded chunk as stored in the vector store."""

    tenant_id: str
    document_id: str
    filename: str
    chunk_index: int
    text: str
    vector: list[float]
    content_hash: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # The document's heading, indexed with the text in the sparse vector (see `Chunk.heading`).
    heading: str = ""

    @property
    def point_id(self) -> str:
        return chunk_point_id(self.tenant_id, self.document_id, self.chunk_index)


@dataclass(frozen=True)
class ScoredPassage:
    chunk_id: str
    document_id: str
    filename: str
    chunk_index: int
    text: str
    score: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: parallel tuples of term ids (ascending, distinct) and weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.indices)


FusionMethod = Literal["relative", "rrf", "dbsf"]


@dataclass(frozen=True)
class HybridFusion:
    """How a store fuses its dense and sparse candidate lists into one ranking.

    `rrf`: reciprocal rank fusion as Qdrant weights it, score = sum over the lists of
    1 / (rank / weight + rrf_k - 1), rank from 1 (a weight scales a list's ranks, not its scores);
    `dbsf`: distribution-based score fusion (each list's scores normalised by their mean and
    spread, then summed); `relative`: each list's scores min-max normalised, then summed with the
    weights (`domain.fusion`; done by the retrieval service from the store's two lists, never by a
    store). `candidates` is how many hits each list contributes before fusion."""

    method: FusionMethod = "rrf"
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    rrf_k: int = 60
    candidates: int = 50


@dataclass(frozen=True)
class SearchQuery:
    """A tenant-scoped search. `vector` (dense) and `sparse` may each be empty; with both, the
    store fuses the two candidate lists as `fusion` says. `score_threshold` applies to the dense
    (cosine) scores."""

    tenant_id: str
    vector: list[float]
    top_k: int = 5
    filters: dict[str, str] = field(default_factory=dict)
    score_threshold: float = 0.0
    document_ids: tuple[str, ...] = ()
    sparse: SparseVector | None = None
    fusion: HybridFusion = HybridFusion()

    @property
    def fused_by_relative_score(self) -> bool:
        """Hybrid (both vectors) with `relative` fusion: the store fuses the two lists itself
        (`domain.fusion`), as no engine does."""
        hybrid = bool(self.vector) and self.sparse is not None and len(self.sparse) > 0
        return hybrid and self.fusion.method == "relative"


@dataclass(frozen=True)
class Citation:
    index: int
    document_id: str
    filename: str
    chunk_id: str
    quote: str
    score: float
    #: True when the answer carried no valid [n] marker and the passage was attributed by matching
    #: the answer's sentences to it (see `domain/citations.py`).
    inferred: bool = False


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str
    citations: tuple[Citation, ...] = ()
    created_at: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    tenant_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    turn_count: int


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    name: str
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_cursor` back to get the next (empty on the last)."""

    items: list[T]
    next_cursor: str = ""
