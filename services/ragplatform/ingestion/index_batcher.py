"""Group the chunk writes of a worker's concurrent jobs into shared round trips.

A worker runs RAG_WORKER_CONCURRENCY jobs at once, and each small document ends in one write of
its few chunks to the retrieval service: one gRPC round trip per document, whose fixed cost (in
the worker, the retrieval service and the vector store) outweighed the chunks it carried. The
`IndexBatcher` sends a write as soon as a write slot is free, and gathers the documents that
arrive while every slot is busy into the next write: under load documents share round trips,
while a lone document is never held back waiting for company (group commit, as databases do for
their log).

Callers may rely on: `index(document, points)` returns once those points are stored, or raises
the error of the write that carried them (every document of a failed write gets it, and their
jobs retry as they would have alone); at most `max_in_flight` writes run at once; a write
carries whole documents, up to `max_points` points unless one document alone has more; a call
cancelled before its write starts is left out of it. A write runs in the context of its first
document's call, so it appears in that job's trace.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

from ragplatform.core.metrics import INDEX_WRITE_DOCUMENTS
from ragplatform.domain.models import ChunkPoint, Document

# Writes the chunks of several documents at once (the retrieval service's UpsertDocumentsChunks).
WriteDocuments = Callable[[list[tuple[Document, list[ChunkPoint]]]], Awaitable[None]]

_Pending = tuple[Document, list[ChunkPoint], "asyncio.Future[None]", contextvars.Context]


class IndexBatcher:
    def __init__(self, write: WriteDocuments, max_in_flight: int = 1, max_points: int = 256) -> None:
        self._write = write
        self._max_in_flight = max(1, max_in_flight)
        self._max_points = max(1, max_points)
        self._pending: list[_Pending] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._closed = False

    async def index(self, document: Document, points: list[ChunkPoint]) -> None:
        """Store `points` of `document`, in a write shared with other documents when one is busy."""
        if self._closed:
            raise RuntimeError("the index batcher is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((document, points, done, contextvars.copy_context()))
        self._start_writes()
        await done

    def _start_writes(self) -> None:
        while not self._closed and len(self._writes) < self._max_in_flight:
            batch = self._take_batch()
            if not batch:
                return
            # In the first document's context: its job's trace and log fields carry the write.
            write = asyncio.create_task(self._run(batch), context=batch[0][3])
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    def _take_batch(self) -> list[_Pending]:
        self._pending = [entry for entry in self._pending if not entry[2].done()]  # cancelled meanwhile
        batch: list[_Pending] = []
        points = 0
        while self._pending and (not batch or points + len(self._pending[0][1]) <= self._max_points):
            entry = self._pending.pop(0)
            batch.append(entry)
            points += len(entry[1])
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        INDEX_WRITE_DOCUMENTS.observe(len(batch))
        try:
            await self._write([(document, points) for document, points, _, _ in batch])
        except asyncio.CancelledError:
            for _, _, done, _ in batch:
                done.cancel()
            raise
        except Exception as exc:
            for _, _, done, _ in batch:
                if not done.done():
                    done.set_exception(exc)
        else:
            for _, _, done, _ in batch:
                if not done.done():
                    done.set_result(None)
        finally:
            # This slot is free: the documents that gathered meanwhile go now, in a new task.
            current = asyncio.current_task()
            if current is not None:
                self._writes.discard(current)
            self._start_writes()

    async def close(self) -> None:
        """Cancel the writes in progress and those waiting (on stop: their jobs are released
        and run again); later calls fail."""
        self._closed = True
        for _, _, done, _ in self._pending:
            done.cancel()
        self._pending.clear()
        writes = list(self._writes)
        for write in writes:
            write.cancel()
        await asyncio.gather(*writes, return_exceptions=True)
