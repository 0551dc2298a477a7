"""The writes of the embedded store, as plain (picklable) values and as engine operations.

Kept as values so that the writes made while an index build runs can be replayed into the built
copy by another process (`edge_index_build.py replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import qdrant_edge as qe

from ragplatform.backends.vectors import payload as fields
from ragplatform.domain.models import ChunkPoint, SparseVector


@dataclass(frozen=True)
class UpsertChunks:
    points: tuple[ChunkPoint, ...]


@dataclass(frozen=True)
class DeleteChunks:
    """A document's chunks with index >= keep_below_index."""

    tenant_id: str
    document_id: str
    keep_below_index: int = 0


EdgeWrite = UpsertChunks | DeleteChunks


def engine_sparse(vector: SparseVector) -> Any:
    return qe.SparseVector(list(vector.indices), list(vector.values))


def tenant_condition(tenant_id: str) -> Any:
    return qe.FieldCondition(fields.TENANT_ID, match=qe.MatchValue(tenant_id))


def engine_operation(write: EdgeWrite) -> Any:
    """The engine's update operation for a write."""
    if isinstance(write, UpsertChunks):
        return qe.UpdateOperation.upsert_points(
            [
                qe.Point(
                    p.point_id,
                    {
                        "": p.vector,
                        fields.SPARSE_VECTOR: engine_sparse(fields.sparse_document_vector(p.heading, p.text)),
                    },
                    fields.chunk_payload(p),
                )
                for p in write.points
            ]
        )
    must = [
        tenant_condition(write.tenant_id),
        qe.FieldCondition(fields.DOCUMENT_ID, match=qe.MatchValue(write.document_id)),
    ]
    if write.keep_below_index > 0:
        must.append(qe.FieldCondition(fields.CHUNK_INDEX, range=qe.RangeFloat(gte=write.keep_below_index)))
    return qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=must))
