"""The embedded vector store (qdrant-edge-py, the real engine, on a temporary directory)."""

from __future__ import annotations

import asyncio
import math
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.vectors.base import VectorStore
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.backends.vectors.factory import embedded_vector_dir, open_vector_store
from ragplatform.core.settings import VectorSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument
from ragplatform.domain.models import ChunkPoint, SearchQuery, chunk_point_id

DIM = 8


def unit(*components: float) -> list[float]:
    """A unit vector whose first components are given (the rest zero)."""
    vector = [*components, *([0.0] * (DIM - len(components)))]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def point(
    tenant: str,
    document: str,
    index: int,
    vector: list[float],
    metadata: dict[str, str] | None = None,
) -> ChunkPoint:
    return ChunkPoint(
        tenant_id=tenant,
        document_id=document,
        filename=f"{document}.md",
        chunk_index=index,
        text=f"{document} chunk {index}",
        vector=vector,
        content_hash="h-" + document,
        metadata=metadata or {},
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    vectors = EdgeVectorStore(tmp_path / "vectors")
    await vectors.open(DIM)
    yield vectors
    await vectors.close()


def test_factory_picks_the_embedded_engine_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(VectorSettings, data_dir=tmp_path, vector_url="", vector_collection="chunks")
    store = open_vector_store(settings)
    assert isinstance(store, EdgeVectorStore)
    assert store.path == tmp_path / "vectors" / "chunks" == embedded_vector_dir(settings)


async def test_search_returns_the_nearest_chunks_with_their_payload(store: EdgeVectorStore) -> None:
    await store.upsert(
        [
            point("t1", "doc-a", 0, unit(1, 0), {"lang": "en"}),
            point("t1", "doc-a", 1, unit(1, 1)),
            point("t1", "doc-b", 0, unit(0, 1)),
        ]
    )
    hits = await store.search(SearchQuery(tenant_id="t1", vector=unit(1, 0.1), top_k=2))
    assert [(h.document_id, h.chunk_index) for h in hits] == [("doc-a", 0), ("doc-a", 1)]
    best = hits[0]
    assert best.chunk_id == chunk_point_id("t1", "doc-a", 0)
    assert best.filename == "doc-a.md"
    assert best.text == "doc-a chunk 0"
    assert best.metadata == {"lang": "en"}
    assert best.score == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)  # cosine
    assert hits[0].score > hits[1].score


async def test_a_tenant_never_sees_another_tenants_chunks(store: EdgeVectorStore) -> None:
    await store.upsert([point("t1", "doc-1", 0, unit(1, 0)), point("t2", "doc-2", 0, unit(1, 0))])
    hits = await store.search(SearchQuery(tenant_id="t2", vector=unit(1, 0), top_k=10))
    assert [h.document_id for h in hits] == ["doc-2"]
    assert await store.search(SearchQuery(tenant_id="t3", vector=unit(1, 0), top_k=10)) == []
    with pytest.raises(InvalidArgument, match="tenant"):
        await store.search(SearchQuery(tenant_id="", vector=unit(1, 0)))


async def test_metadata_filters_documents_and_threshold_narrow_the_results(store: EdgeVectorStore) -> None:
    await store.upsert(
        [
            point("t1", "en-doc", 0, unit(1, 0), {"lang": "en", "app.kubernetes.io/name": "x"}),
            point("t1", "fr-doc", 0, unit(1, 0.2), {"lang": "fr"}),
            point("t1", "far-doc", 0, unit(0, 1), {"lang": "en"}),
        ]
    )

    async def docs(**kwargs: object) -> list[str]:
        hits = await store.search(SearchQuery(tenant_id="t1", vector=unit(1, 0), top_k=10, **kwargs))  # type: ignore[arg-type]
        return [h.document_id for h in hits]

    assert await docs(filters={"lang": "en"}) == ["en-doc", "far-doc"]
    assert await docs(filters={"lang": "en", "app.kubernetes.io/name": "x"}) == ["en-doc"]
    assert await docs(filters={"lang": "de"}) == []
    assert await docs(document_ids=("fr-doc", "far-doc")) == ["fr-doc", "far-doc"]
    assert await docs(score_threshold=0.5) == ["en-doc", "fr-doc"]  # far-doc scores 0
    with pytest.raises(InvalidArgument, match="metadata filter key"):
        await docs(filters={'a"b': "x"})


async def test_upsert_is_idempotent_and_replaces_a_changed_chunk(store: EdgeVectorStore) -> None:
    await store.upsert([point("t1", "doc", 0, unit(1, 0)), point("t1", "doc", 1, unit(0, 1))])
    await store.upsert([point("t1", "doc", 0, unit(1, 0)), point("t1", "doc", 1, unit(0, 1))])
    assert await store.count("t1") == 2
    changed = ChunkPoint("t1", "doc", "doc.md", 1, "new text", unit(0, 1))
    await store.upsert([changed])
    hits = await store.search(SearchQuery(tenant_id="t1", vector=unit(0, 1), top_k=1))
    assert hits[0].text == "new text"
    assert await store.count() == 2


async def test_delete_document_keeps_chunks_below_the_index(store: EdgeVectorStore) -> None:
    await store.upsert([point("t1", "doc", i, unit(1, i)) for i in range(5)])
    await store.upsert([point("t1", "other", 0, unit(1, 0)), point("t2", "t2-doc", 0, unit(1, 0))])
    await store.delete_document("t1", "doc", keep_below_index=2)
    hits = await store.search(SearchQuery(tenant_id="t1", vector=unit(1, 0), top_k=10, document_ids=("doc",)))
    assert sorted(h.chunk_index for h in hits) == [0, 1]
    await store.delete_document("t1", "doc")
    assert await store.count("t1") == 1  # "other" stays
    await store.delete_document("t1", "t2-doc")  # another tenant's document: untouched
    assert await store.count("t2") == 1
    await store.delete_document("t1", "missing")  # nothing to delete is fine


async def test_vectors_of_the_wrong_dimension_are_refused(store: EdgeVectorStore) -> None:
    with pytest.raises(InvalidArgument, match="3-dimensional vector; this store holds 8"):
        await store.upsert([ChunkPoint("t1", "doc", "doc.md", 0, "x", [1.0, 0.0, 0.0])])


async def test_chunks_survive_a_reopen_and_the_dimension_is_checked(tmp_path: Path) -> None:
    first: VectorStore = EdgeVectorStore(tmp_path / "v")
    await first.open(DIM)
    await first.upsert([point("t1", "doc", i, unit(1, i)) for i in range(3)])
    await first.close()

    wrong = EdgeVectorStore(tmp_path / "v")
    with pytest.raises(FailedPrecondition, match=r"holds 8-dimensional .* makes 16-dimensional"):
        await wrong.open(16)

    again = EdgeVectorStore(tmp_path / "v")
    await again.open(DIM)
    await again.open(DIM)  # opening twice is harmless
    try:
        assert await again.count("t1") == 3
        hits = await again.search(SearchQuery(tenant_id="t1", vector=unit(1, 0), top_k=1))
        assert hits[0].chunk_index == 0
    finally:
        await again.close()


async def test_a_second_process_cannot_open_an_owned_store(store: EdgeVectorStore) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
        from ragplatform.domain.errors import FailedPrecondition
        try:
            asyncio.run(EdgeVectorStore(Path({str(store.path)!r})).open({DIM}))
        except FailedPrecondition as exc:
            print(exc.message)
            sys.exit(3)
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 3, stderr.decode()
    assert "already open in another process" in stdout.decode()


async def test_writes_survive_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    path = tmp_path / "crashed"
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from pathlib import Path
        from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
        from ragplatform.domain.models import ChunkPoint
        async def main():
            store = EdgeVectorStore(Path({str(path)!r}))
            await store.open({DIM})
            vector = lambda i: [1.0, float(i)] + [0.0] * {DIM - 2}
            await store.upsert([ChunkPoint("t", "d", "f", i, "x", vector(i)) for i in range(50)])
            await store.delete_document("t", "d", keep_below_index=40)
            os._exit(0)  # no close, no flush: as if killed
        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    store = EdgeVectorStore(path)
    await store.open(DIM)
    try:
        assert await store.count("t") == 40
    finally:
        await store.close()


async def test_concurrent_searches_and_writes(store: EdgeVectorStore) -> None:
    async def writer(tenant: str) -> None:
        for i in range(20):
            await store.upsert([point(tenant, f"{tenant}-d{i}", j, unit(1, i, j)) for j in range(5)])

    async def reader() -> int:
        found = 0
        for _ in range(20):
            found += len(await store.search(SearchQuery(tenant_id="w1", vector=unit(1, 1), top_k=3)))
        return found

    await asyncio.gather(writer("w1"), writer("w2"), reader(), reader())
    assert await store.count("w1") == 100
    assert await store.count("w2") == 100
    assert await store.count() == 200


async def test_using_a_store_before_open_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="open"):
        await EdgeVectorStore(tmp_path / "v").count()
