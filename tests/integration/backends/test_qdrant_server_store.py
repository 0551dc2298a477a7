"""QdrantServerStore.

No Qdrant server binary can be installed on these machines (none exists in any reachable
registry), so these tests drive the adapter through qdrant-client's LOCAL MODE
(`AsyncQdrantClient(location=":memory:")`): the same client class and API the adapter uses
against a server, with Qdrant's filtering and scoring reimplemented in Python. What local mode
cannot show - HTTP transport, API-key checks, payload index internals - is not claimed here;
the connection-failure test does use a real HTTP client against a closed port.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from qdrant_client import AsyncQdrantClient

from ragplatform.backends.vectors.qdrant_server import QdrantServerStore
from ragplatform.core.settings import VectorSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, Unavailable
from ragplatform.domain.models import ChunkPoint, SearchQuery
from tests.support.servers import free_port

DIM = 4
# Local mode ignores payload indexes and says so; the server honours them.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


def settings(url: str = "http://qdrant.invalid:6333") -> VectorSettings:
    return load_settings(VectorSettings, vector_url=url, vector_collection="chunks")


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def point(tenant: str, document: str, index: int, vector: list[float], **metadata: str) -> ChunkPoint:
    return ChunkPoint(
        tenant_id=tenant,
        document_id=document,
        filename=f"{document}.md",
        chunk_index=index,
        text=f"{document} chunk {index}",
        vector=vector,
        content_hash="h",
        metadata=dict(metadata),
    )


@pytest.fixture
async def local_client() -> AsyncIterator[AsyncQdrantClient]:
    client = AsyncQdrantClient(location=":memory:")  # local mode: see the module docstring
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def vectors(local_client: AsyncQdrantClient) -> QdrantServerStore:
    store = QdrantServerStore(settings(), client=local_client, upsert_batch_size=3)
    await store.open(DIM)
    return store


async def test_open_creates_the_collection_with_the_embedders_dimension(
    vectors: QdrantServerStore, local_client: AsyncQdrantClient
) -> None:
    info = await local_client.get_collection("chunks")
    assert info.config.params.vectors.size == DIM  # type: ignore[union-attr]
    await vectors.open(DIM)  # idempotent


async def test_a_collection_of_another_dimension_is_refused_with_what_to_do(
    vectors: QdrantServerStore, local_client: AsyncQdrantClient
) -> None:
    other = QdrantServerStore(settings(), client=local_client)
    with pytest.raises(FailedPrecondition, match="RAG_VECTOR_COLLECTION"):
        await other.open(DIM + 1)


async def test_search_is_tenant_filtered_and_ranked(vectors: QdrantServerStore) -> None:
    await vectors.upsert(
        [
            point("a", "doc1", 0, unit(1, 0, 0, 0)),
            point("a", "doc1", 1, unit(1, 1, 0, 0)),
            point("a", "doc2", 0, unit(0, 0, 1, 0)),
            point("b", "secret", 0, unit(1, 0, 0, 0)),
        ]
    )
    hits = await vectors.search(SearchQuery(tenant_id="a", vector=unit(1, 0, 0, 0), top_k=10))
    assert [(h.document_id, h.chunk_index) for h in hits] == [("doc1", 0), ("doc1", 1), ("doc2", 0)]
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].text == "doc1 chunk 0"
    assert hits[0].filename == "doc1.md"
    # Tenant b's identical vector never shows up for a, and b sees only its own.
    b_hits = await vectors.search(SearchQuery(tenant_id="b", vector=unit(1, 0, 0, 0), top_k=10))
    assert [h.document_id for h in b_hits] == ["secret"]
    assert await vectors.search(SearchQuery(tenant_id="nobody", vector=unit(1, 0, 0, 0))) == []


async def test_metadata_filters_document_ids_and_score_threshold(vectors: QdrantServerStore) -> None:
    await vectors.upsert(
        [
            point("a", "guide", 0, unit(1, 0, 0, 0), team="docs", **{"app.kubernetes.io/name": "rag"}),
            point("a", "notes", 0, unit(1, 0.2, 0, 0), team="ops"),
            point("a", "far", 0, unit(0, 0, 0, 1), team="docs"),
        ]
    )
    query = unit(1, 0, 0, 0)
    by_team = await vectors.search(SearchQuery("a", query, top_k=10, filters={"team": "docs"}))
    assert {h.document_id for h in by_team} == {"guide", "far"}
    dotted = await vectors.search(SearchQuery("a", query, top_k=10, filters={"app.kubernetes.io/name": "rag"}))
    assert [h.document_id for h in dotted] == ["guide"]
    assert dotted[0].metadata == {"team": "docs", "app.kubernetes.io/name": "rag"}
    only = await vectors.search(SearchQuery("a", query, top_k=10, document_ids=("notes", "far")))
    assert [h.document_id for h in only] == ["notes", "far"]
    close = await vectors.search(SearchQuery("a", query, top_k=10, score_threshold=0.5))
    assert {h.document_id for h in close} == {"guide", "notes"}


async def test_upserts_are_batched_and_idempotent(vectors: QdrantServerStore) -> None:
    points = [point("a", "big", i, unit(1, i, 0, 0)) for i in range(10)]  # 4 batches of <= 3
    await vectors.upsert(points)
    await vectors.upsert(points)
    assert await vectors.count("a") == 10


async def test_delete_document_keeps_chunks_below_the_index_and_counts_follow(vectors: QdrantServerStore) -> None:
    await vectors.upsert([point("a", "doc", i, unit(1, 0, i, 0)) for i in range(5)])
    await vectors.upsert([point("a", "other", 0, unit(0, 1, 0, 0)), point("b", "doc-b", 0, unit(1, 0, 0, 0))])

    await vectors.delete_document("a", "doc", keep_below_index=2)
    hits = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=10, document_ids=("doc",)))
    assert sorted(h.chunk_index for h in hits) == [0, 1]

    await vectors.delete_document("a", "doc")
    assert await vectors.count("a") == 1
    assert await vectors.count("b") == 1
    assert await vectors.count() == 2


async def test_a_vector_of_the_wrong_dimension_is_refused(vectors: QdrantServerStore) -> None:
    with pytest.raises(FailedPrecondition, match="dimension"):
        await vectors.upsert([point("a", "doc", 0, [1.0, 0.0])])


async def test_an_unreachable_server_is_unavailable_with_what_to_check() -> None:
    store = QdrantServerStore(settings(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(Unavailable, match="RAG_VECTOR_URL"):
            await store.open(DIM)
    finally:
        await store.close()
