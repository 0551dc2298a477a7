"""The vector store. Adapters: the embedded engine (see `factory.py`) and `qdrant_server.py`.

Point ids are deterministic (`domain.models.chunk_point_id`), so upserts are idempotent.
Every search is filtered on the tenant id: there is no way to search across tenants.
"""

from __future__ import annotations

from typing import Protocol

from ragplatform.domain.models import ChunkPoint, ScoredPassage, SearchQuery


class VectorStore(Protocol):
    async def open(self, dimension: int, model: str = "") -> None:
        """Create the collection with this dimension if missing; raise `FailedPrecondition` if it
        exists with another dimension (a different embedder was configured). With `model` (the
        embedder's name), record it in a new collection and raise `FailedPrecondition` if the
        collection's vectors come from another model (`embedder_record.model_to_record`)."""

    async def close(self) -> None: ...

    async def upsert(self, points: list[ChunkPoint]) -> None: ...

    async def search(self, query: SearchQuery) -> list[ScoredPassage]: ...

    async def delete_document(self, tenant_id: str, document_id: str, keep_below_index: int = 0) -> None:
        """Remove the document's chunks with index >= keep_below_index."""

    async def count(self, tenant_id: str | None = None) -> int: ...
