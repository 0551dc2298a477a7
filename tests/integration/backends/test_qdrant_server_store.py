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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from qdrant_client import AsyncQdrantClient, models

from ragplatform.backends.vectors.payload import SPARSE_VECTOR, chunk_payload
from ragplatform.backends.vectors.qdrant_server import QdrantServerStore
from ragplatform.core.settings import VectorSettings, load_settings
from ragplatform.core.tracing import disable_tracing, enable_tracing
from ragplatform.core.tracing_state import tracer
from ragplatform.domain.errors import FailedPrecondition, Internal, Unavailable
from ragplatform.domain.fusion import relative_score_fusion
from ragplatform.domain.models import ChunkPoint, HybridFusion, SearchQuery, SparseVector
from ragplatform.domain.sparse_encoding import query_vector, term_id
from tests.e2e.production.qdrant_double import QdrantRestDouble
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


def text_point(tenant: str, document: str, text: str, vector: list[float], heading: str = "") -> ChunkPoint:
    return ChunkPoint(tenant, document, f"{document}.1.txt", 0, text, vector, heading=heading)


async def test_hybrid_search_fuses_dense_and_sparse_in_one_query_api_call(vectors: QdrantServerStore) -> None:
    await vectors.upsert(
        [
            text_point("a", "du", "estimate file space usage of each directory", unit(1, 0, 0, 0)),
            text_point("a", "tar", "save many files into one tape archive", unit(1, 0.3, 0, 0)),
            text_point("a", "bzip2", "Burrows-Wheeler block sorting compression", unit(0, 0, 0, 1), heading="bzip2"),
            text_point("b", "secret", "Burrows-Wheeler block sorting compression", unit(1, 0, 0, 0)),
        ]
    )
    terms = query_vector("block sorting compression")
    sparse_only = await vectors.search(SearchQuery("a", [], top_k=10, sparse=terms))
    assert [h.document_id for h in sparse_only] == ["bzip2"]  # only chunks sharing a term, own tenant
    fused = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=3, sparse=terms))
    assert {h.document_id for h in fused[:2]} == {"du", "bzip2"}  # each list's best
    lexical = HybridFusion(dense_weight=1.0, sparse_weight=3.0)
    weighted = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=3, sparse=terms, fusion=lexical))
    assert weighted[0].document_id == "bzip2"
    dbsf = HybridFusion(method="dbsf")
    distributed = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=3, sparse=terms, fusion=dbsf))
    assert {h.document_id for h in distributed} == {"du", "tar", "bzip2"}
    # The heading is indexed with the text: a query for it finds the chunk.
    by_heading = await vectors.search(SearchQuery("a", [], top_k=1, sparse=query_vector("bzip2")))
    assert [h.document_id for h in by_heading] == ["bzip2"]
    # With a threshold, the lexical side cannot bring back a passage below it.
    strict = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=3, score_threshold=0.9, sparse=terms))
    assert [h.document_id for h in strict] == ["du", "tar"]
    # Relative score fusion: both lists with their own scores, fused by domain.fusion.
    relative = HybridFusion(method="relative", sparse_weight=0.5)
    dense = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=50))
    expected = relative_score_fusion(
        [(h.chunk_id, h.score) for h in dense], [(h.chunk_id, h.score) for h in sparse_only], 1.0, 0.5, 3
    )
    rel = await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=3, sparse=terms, fusion=relative))
    assert [h.chunk_id for h in rel] == [key for key, _ in expected]
    assert [h.score for h in rel] == pytest.approx([score for _, score in expected])
    assert [h.document_id for h in rel] == ["du", "tar", "bzip2"]
    assert all(h.text for h in rel)
    lexical = HybridFusion(method="relative", sparse_weight=3.0)
    assert (await vectors.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=1, sparse=terms, fusion=lexical)))[
        0
    ].document_id == "bzip2"
    strict = await vectors.search(
        SearchQuery("a", unit(1, 0, 0, 0), top_k=3, score_threshold=0.9, sparse=terms, fusion=relative)
    )
    assert [h.document_id for h in strict] == ["du", "tar"]


@pytest.mark.parametrize("previous", ["dense only", "words-only sparse vector"])
async def test_a_collection_made_before_sparse_vectors_is_upgraded_in_place(
    local_client: AsyncQdrantClient, previous: str
) -> None:
    # The collection as an earlier release made it: the dense vector only, or words-only sparse
    # vectors under the name they had before term pairs ("bm25").
    words_only = "sparse" in previous
    await local_client.create_collection(
        "chunks",
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)} if words_only else None,
    )
    old = [
        text_point("a", f"doc{i}", text, unit(1, i, 0, 0))
        for i, text in enumerate(["gzip compresses files", "tar writes tape archives", "du estimates disk usage"])
    ]

    def old_vector(p: ChunkPoint) -> models.VectorStruct:
        words = query_vector(p.text)
        bm25 = models.SparseVector(indices=list(words.indices), values=list(words.values))
        return {"": p.vector, "bm25": bm25} if words_only else p.vector

    await local_client.upsert(
        "chunks",
        points=[models.PointStruct(id=p.point_id, vector=old_vector(p), payload=chunk_payload(p)) for p in old],
    )
    store = QdrantServerStore(settings(), client=local_client, upsert_batch_size=2)  # scrolls in pages of 2
    await store.open(DIM)
    info = await local_client.get_collection("chunks")
    assert SPARSE_VECTOR in (info.config.params.sparse_vectors or {})
    assert await store.count("a") == 3  # nothing lost
    hits = await store.search(SearchQuery("a", [], top_k=3, sparse=query_vector("tape archive")))
    assert [h.document_id for h in hits] == ["doc1"]
    assert hits[0].text == "tar writes tape archives"
    pair = SparseVector((term_id("tape archive"),), (1.0,))  # the pairs are indexed too
    assert [h.document_id for h in await store.search(SearchQuery("a", [], top_k=3, sparse=pair))] == ["doc1"]
    await store.open(DIM)  # opening again finds the sparse vector and changes nothing
    assert await store.count("a") == 3


async def test_a_collection_records_its_embedding_model_and_refuses_another(local_client: AsyncQdrantClient) -> None:
    store = QdrantServerStore(settings(), client=local_client)
    await store.open(DIM, "all-MiniLM-L6-v2")
    info = await local_client.get_collection("chunks")
    assert info.config.metadata == {"embedding_model": "all-MiniLM-L6-v2"}
    await store.open(DIM, "all-MiniLM-L6-v2")  # the same model: fine
    with pytest.raises(FailedPrecondition, match=r"RAG_EMBEDDER=minilm.*RAG_VECTOR_COLLECTION"):
        await QdrantServerStore(settings(), client=local_client).open(DIM, "multilingual-e5-small-q4")


async def test_an_unrecorded_collection_gets_the_model_that_opens_it(
    vectors: QdrantServerStore, local_client: AsyncQdrantClient
) -> None:
    # `vectors` was opened without a model, as before collections recorded one.
    await vectors.upsert([point("a", "doc", 0, unit(1, 0, 0, 0))])
    with pytest.raises(FailedPrecondition, match="most likely by all-MiniLM-L6-v2"):
        await vectors.open(DIM, "multilingual-e5-small-q4")
    await vectors.open(DIM, "hashing-4")
    assert (await local_client.get_collection("chunks")).config.metadata == {"embedding_model": "hashing-4"}


async def test_upserts_to_a_server_go_as_one_rest_body_that_qdrant_accepts() -> None:
    # Qdrant's REST API as the TEST DOUBLE serves it (its request models validate the body, so a
    # shape Qdrant would refuse fails here with 400): the adapter's own upsert body, over HTTP.
    double = QdrantRestDouble()
    await double.start()
    store = QdrantServerStore(settings(double.url))
    try:
        await store.open(DIM)
        await store.upsert(
            [
                text_point(
                    "a", "bzip2", "Burrows-Wheeler block sorting compression", unit(0, 0, 0, 1), heading="bzip2"
                ),
                point("a", "du", 1, unit(1, 0, 0, 0), team="ops"),
                point("b", "du", 1, unit(1, 0, 0, 0)),
            ]
        )
        dense = await store.search(SearchQuery("a", unit(1, 0, 0, 0), top_k=5))
        assert (dense[0].document_id, dense[0].chunk_index, dense[0].metadata) == ("du", 1, {"team": "ops"})
        assert {h.document_id for h in dense} == {"du", "bzip2"}  # tenant a only
        lexical = await store.search(SearchQuery("a", [], top_k=5, sparse=query_vector("block sorting")))
        assert [(h.document_id, h.text) for h in lexical] == [("bzip2", "Burrows-Wheeler block sorting compression")]
        await store.upsert([point("a", "du", 1, unit(0, 1, 0, 0))])  # the same id: overwritten
        assert await store.count("a") == 2
        with pytest.raises(FailedPrecondition, match="dimension"):
            await store.upsert([point("a", "doc", 0, [1.0, 0.0])])
        await double.stop()
        with pytest.raises(Unavailable, match="RAG_VECTOR_URL"):
            await store.upsert([point("a", "du", 2, unit(1, 0, 0, 0))])
    finally:
        await store.close()
        await double.stop()


async def test_a_batch_qdrant_finds_too_large_is_halved_until_it_fits_and_nothing_is_lost() -> None:
    # The TEST DOUBLE refuses bodies over its limit with 413, as Qdrant does over
    # service.max_request_size_mb; ~700-byte points, 8 per batch, a 3,000-byte limit.
    double = QdrantRestDouble(max_body_bytes=3_000)
    await double.start()
    store = QdrantServerStore(settings(double.url), upsert_batch_size=8)
    try:
        await store.open(DIM)
        points = [text_point("a", f"doc{i}", f"chunk {i} " + "x" * 300, unit(1, i, 0, 0)) for i in range(8)]
        before = double.requests
        await store.upsert(points)
        assert double.requests - before > 1  # one batch of 8 did not fit: it went in smaller ones
        assert await store.count("a") == 8
        big = text_point("a", "huge", "y" * 5_000, unit(0, 0, 1, 0))
        with pytest.raises(FailedPrecondition, match="max_request_size_mb"):
            await store.upsert([big])
    finally:
        await store.close()
        await double.stop()


async def test_any_other_refusal_is_internal_and_quotes_qdrant() -> None:
    double = QdrantRestDouble()  # TEST DOUBLE: answers 404 for a collection that is gone, as Qdrant does
    await double.start()
    store = QdrantServerStore(settings(double.url))
    try:
        await store.open(DIM)
        await double.local.delete_collection("chunks")  # deleted behind the platform's back
        with pytest.raises(Internal, match=r"refused to store vectors \(404: .*chunks"):
            await store.upsert([point("a", "du", 1, unit(1, 0, 0, 0))])
    finally:
        await store.close()
        await double.stop()


async def test_an_upsert_to_a_server_is_a_client_span_in_the_callers_trace() -> None:
    # A worker writes its chunks here directly: the write shows in the ingestion job's trace.
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    double = QdrantRestDouble()
    await double.start()
    store = QdrantServerStore(settings(double.url))
    enable_tracing(provider)
    try:
        await store.open(DIM)
        with tracer().start_as_current_span("ingestion job") as job:
            await store.upsert([point("a", "du", 0, unit(1, 0, 0, 0))])
        [put] = [
            s
            for s in spans.get_finished_spans()
            if str((s.attributes or {}).get("url.full", "")).endswith("/collections/chunks/points?wait=true")
        ]
        assert (put.name, put.kind) == ("PUT", SpanKind.CLIENT)
        assert put.parent is not None
        assert put.parent.span_id == job.get_span_context().span_id
        assert (put.attributes or {})["http.response.status_code"] == 200
    finally:
        disable_tracing()
        await store.close()
        await double.stop()
