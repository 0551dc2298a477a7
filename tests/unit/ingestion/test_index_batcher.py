"""IndexBatcher: concurrent jobs' chunk writes share round trips, and a lone write never waits.

The write function is a recording test double (the batcher's only collaborator is a function
parameter); the gRPC write it stands for is exercised by the worker and tracing tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import ChunkPoint, Document
from ragplatform.ingestion.index_batcher import IndexBatcher


def document(name: str) -> Document:
    now = datetime.now(UTC)
    return Document(name, "acme", f"{name}.txt", "text/plain", "h", 1, "k", {}, 0, now, now)


def points(doc: Document, count: int) -> list[ChunkPoint]:
    return [
        ChunkPoint(doc.tenant_id, doc.document_id, doc.filename, i, f"chunk {i}", [1.0], doc.content_hash, {})
        for i in range(count)
    ]


@dataclass
class RecordingWrite:
    """Records each write's documents; holds every write until `release` is set; fails while
    `failures` is positive."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    writes: list[list[str]] = field(default_factory=list)
    failures: int = 0

    async def __call__(self, documents: list[tuple[Document, list[ChunkPoint]]]) -> None:
        self.writes.append([d.document_id for d, _ in documents])
        await self.release.wait()
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("the retrieval service is unavailable; retry shortly")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_document_is_written_at_once() -> None:
    write = RecordingWrite()
    write.release.set()
    batcher = IndexBatcher(write, max_in_flight=1)
    doc = document("a")
    await asyncio.wait_for(batcher.index(doc, points(doc, 3)), 5)
    assert write.writes == [["a"]]


async def test_documents_arriving_while_the_slots_are_busy_share_the_next_write() -> None:
    write = RecordingWrite()
    batcher = IndexBatcher(write, max_in_flight=1)
    calls = [asyncio.create_task(batcher.index(d, points(d, 2))) for d in map(document, "abcd")]
    await settle()
    assert write.writes == [["a"]]  # b, c, d wait for the slot
    write.release.set()
    await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert write.writes == [["a"], ["b", "c", "d"]]


async def test_a_write_carries_whole_documents_up_to_max_points() -> None:
    write = RecordingWrite()
    batcher = IndexBatcher(write, max_in_flight=1, max_points=5)
    sizes = {"a": 1, "b": 2, "c": 2, "d": 2, "e": 9}
    calls = [asyncio.create_task(batcher.index(document(n), points(document(n), k))) for n, k in sizes.items()]
    await settle()
    write.release.set()
    await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert write.writes == [["a"], ["b", "c"], ["d"], ["e"]]  # e alone is over the cap: sent alone


async def test_a_failed_write_fails_each_of_its_documents_and_the_next_writes_go_on() -> None:
    write = RecordingWrite(failures=1)
    batcher = IndexBatcher(write, max_in_flight=1)
    calls = [asyncio.create_task(batcher.index(d, points(d, 1))) for d in map(document, "abc")]
    await settle()
    write.failures = 2  # the first write (a) and the second (b, c) fail
    write.release.set()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert [type(r) for r in results] == [Unavailable, Unavailable, Unavailable]
    doc = document("d")
    await asyncio.wait_for(batcher.index(doc, points(doc, 1)), 5)
    assert write.writes == [["a"], ["b", "c"], ["d"]]


async def test_a_call_cancelled_while_waiting_is_left_out_of_the_write() -> None:
    write = RecordingWrite()
    batcher = IndexBatcher(write, max_in_flight=1)
    calls = {d: asyncio.create_task(batcher.index(document(d), points(document(d), 1))) for d in "abc"}
    await settle()
    calls["b"].cancel()
    write.release.set()
    await asyncio.wait_for(asyncio.gather(calls["a"], calls["c"]), 5)
    assert write.writes == [["a"], ["c"]]


async def test_close_cancels_writes_in_progress_and_refuses_later_calls() -> None:
    write = RecordingWrite()
    batcher = IndexBatcher(write, max_in_flight=1)
    calls = [asyncio.create_task(batcher.index(d, points(d, 1))) for d in map(document, "ab")]
    await settle()
    await batcher.close()
    for call in calls:
        with pytest.raises(asyncio.CancelledError):
            await call
    doc = document("c")
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.index(doc, points(doc, 1))
