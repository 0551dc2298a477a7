"""Group the chunk writes of a worker's concurrent jobs into shared round trips.

A worker runs RAG_WORKER_CONCURRENCY jobs at once, and each small document ends in one write of
its few chunks to the retrieval service: one gRPC round trip per document, whose fixed cost (in
the worker, the retrieval service and the vector store) outweighed the chunks it carried. The
`IndexBatcher` is a `GroupCommit` of those writes: a write goes as soon as a write slot is free,
and the documents that arrive while every slot is busy go together in the next one, so under
load documents share round trips while a lone document is never held back waiting for company.

Callers may rely on: `index(document, points)` returns once those points are stored, or raises
the error of the write that carried them (every document of a failed write gets it, and their
jobs retry as they would have alone); at most `max_in_flight` writes run at once; a write
carries whole documents, up to `max_points` points unless one document alone has more; a call
cancelled before its write starts is left out of it. A write runs in the context of its first
document's call, so it appears in that job's trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ragplatform.core.metrics import INDEX_WRITE_DOCUMENTS
from ragplatform.domain.models import ChunkPoint, Document
from ragplatform.ingestion.group_commit import GroupCommit

# Writes the chunks of several documents at once (the retrieval service's UpsertDocumentsChunks).
WriteDocuments = Callable[[list[tuple[Document, list[ChunkPoint]]]], Awaitable[None]]
_Write = tuple[Document, list[ChunkPoint]]


def _points(write: _Write) -> int:
    return len(write[1])


class IndexBatcher:
    def __init__(self, write: WriteDocuments, max_in_flight: int = 1, max_points: int = 256) -> None:
        self._write = write
        self._writes: GroupCommit[_Write, None] = GroupCommit(
            self._run,
            name="the index batcher",
            max_in_flight=max_in_flight,
            max_weight=max_points,
            weight=_points,
            on_batch=INDEX_WRITE_DOCUMENTS.observe,
        )

    async def index(self, document: Document, points: list[ChunkPoint]) -> None:
        """Store `points` of `document`, in a write shared with other documents when one is busy."""
        await self._writes.submit((document, points))

    async def _run(self, documents: list[_Write]) -> list[None]:
        await self._write(documents)
        return [None] * len(documents)

    async def close(self) -> None:
        """Cancel the writes in progress and those waiting (on stop: their jobs are released
        and run again); later calls raise `GroupCommitClosed` (a RuntimeError)."""
        await self._writes.close()
