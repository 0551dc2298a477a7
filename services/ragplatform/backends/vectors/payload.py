"""The payload every vector-store adapter stores with a chunk, and the filter paths into it.

One definition for the embedded engine and the Qdrant server adapter, so that both agree on the
field names (a collection written by one can be read by the other, e.g. after a migration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragplatform.domain.chunk_context import contextualized
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import ChunkPoint, ScoredPassage, SparseVector
from ragplatform.domain.sparse_encoding import document_vector

TENANT_ID = "tenant_id"
DOCUMENT_ID = "document_id"
FILENAME = "filename"
CHUNK_INDEX = "chunk_index"
TEXT = "text"
CONTENT_HASH = "content_hash"
METADATA = "metadata"
HEADING = "heading"
#: The named sparse (BM25-style) vector beside the unnamed dense one. Named for its encoding:
#: words and adjacent-word pairs (`domain.sparse_encoding`). A store whose sparse vector has another
#: name (`bm25`: words only, before the pairs) is re-indexed from its payloads on open, as one made
#: before sparse vectors is; a Qdrant server collection keeps the old vector unused beside it.
SPARSE_VECTOR = "bm25_pairs"


def chunk_payload(point: ChunkPoint) -> dict[str, Any]:
    """The stored payload of a chunk (everything but its vector and id)."""
    return {
        TENANT_ID: point.tenant_id,
        DOCUMENT_ID: point.document_id,
        FILENAME: point.filename,
        CHUNK_INDEX: point.chunk_index,
        TEXT: point.text,
        CONTENT_HASH: point.content_hash,
        METADATA: dict(point.metadata),
        HEADING: point.heading,
    }


def sparse_document_vector(heading: str, text: str) -> SparseVector:
    """The sparse vector stored for a chunk: its text with its document's heading (the same in
    every adapter, and when an old collection is re-indexed from its payloads)."""
    return document_vector(contextualized(heading, text))


def scored_passage(point_id: object, score: float, payload: Mapping[str, Any] | None) -> ScoredPassage:
    """A search hit as the domain sees it."""
    payload = payload or {}
    metadata = payload.get(METADATA) or {}
    return ScoredPassage(
        chunk_id=str(point_id),
        document_id=str(payload.get(DOCUMENT_ID, "")),
        filename=str(payload.get(FILENAME, "")),
        chunk_index=int(payload.get(CHUNK_INDEX, 0)),
        text=str(payload.get(TEXT, "")),
        score=float(score),
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def metadata_path(key: str) -> str:
    """The payload path of a metadata label. The key is quoted, so labels with dots or slashes
    (`app.kubernetes.io/name`) match themselves rather than a nested object."""
    if not key or '"' in key or "\\" in key:
        raise InvalidArgument(
            f"invalid metadata filter key {key!r}: it must be non-empty and contain no quote or backslash."
        )
    return f'{METADATA}."{key}"'
