"""The retrieval service through its generated stub: the embedded qdrant-edge store and the
hashing embedder, both real."""

from __future__ import annotations

import grpc
import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.v1 import common_pb2, retrieval_pb2, retrieval_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

DIMENSION = 384  # the services' RAG_EMBEDDING_DIMENSION default
PUMP = ["The Zephyr-9 pump delivers 42 bar at most.", "The Zephyr-9 impeller is made of bronze."]
DRONE = ["The Kestrel X2 drone flies for 38 minutes.", "The Kestrel X2 drone weighs 1.2 kg."]


def stub(channel: grpc.aio.Channel) -> retrieval_pb2_grpc.RetrievalServiceStub:
    return retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def upsert_request(
    tenant: str, document_id: str, texts: list[str], labels: dict[str, str] | None = None, dimension: int = DIMENSION
) -> retrieval_pb2.UpsertChunksRequest:
    vectors = await HashingEmbedder(dimension).embed_documents(texts)
    return retrieval_pb2.UpsertChunksRequest(
        tenant_id=tenant,
        document_id=document_id,
        filename=f"{document_id}.txt",
        metadata=labels or {},
        content_hash="h-" + document_id,
        chunks=[
            retrieval_pb2.IndexedChunk(chunk_index=i, text=t, vector=v)
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ],
    )


async def index(
    channel: grpc.aio.Channel,
    tenant: str,
    document_id: str,
    texts: list[str],
    labels: dict[str, str] | None = None,
    dimension: int = DIMENSION,
) -> int:
    reply = await stub(channel).UpsertChunks(await upsert_request(tenant, document_id, texts, labels, dimension))
    upserted: int = reply.upserted
    return upserted


async def search(channel: grpc.aio.Channel, tenant: str, query: str, **kwargs: object) -> list[common_pb2.Passage]:
    reply = await stub(channel).Search(retrieval_pb2.SearchRequest(tenant_id=tenant, query=query, **kwargs))  # type: ignore[arg-type]
    return list(reply.passages)


async def search_error(channel: grpc.aio.Channel, **fields: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(channel).Search(retrieval_pb2.SearchRequest(**fields))  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return info.value


async def test_search_finds_the_matching_chunk_first_with_its_fields(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    assert await index(retrieval_channel, tenant, "pump", PUMP, {"team": "pumps"}) == 2
    await index(retrieval_channel, tenant, "drone", DRONE)
    passages = await search(retrieval_channel, tenant, "What is the Zephyr-9 impeller made of?")
    best = passages[0]
    assert (best.document_id, best.chunk_index, best.filename) == ("pump", 1, "pump.txt")
    assert best.text == PUMP[1]
    assert dict(best.metadata) == {"team": "pumps"}
    assert best.chunk_id
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tenant_id": "t", "query": ""}, "query is empty"),
        ({"tenant_id": "t", "query": "   \n"}, "query is empty"),
        ({"tenant_id": "", "query": "pump"}, "tenant_id is required"),
        ({"tenant_id": "t", "query": "pump", "top_k": 51}, "top_k must be between 1 and 50"),
        ({"tenant_id": "t", "query": "pump", "top_k": -1}, "top_k must be between 1 and 50"),
        ({"tenant_id": "t", "query": "pump", "score_threshold": 1.5}, "score_threshold"),
        ({"tenant_id": "t", "query": "x" * 8001}, "longer than 8000"),
    ],
)
async def test_search_validation(retrieval_channel: grpc.aio.Channel, fields: dict[str, object], message: str) -> None:
    error = await search_error(retrieval_channel, **fields)
    assert message in (error.details() or "")


async def test_top_k_limits_the_passages_and_zero_means_five(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    await index(retrieval_channel, tenant, "many", [f"pump note number {i}" for i in range(8)])
    assert len(await search(retrieval_channel, tenant, "pump note", top_k=3)) == 3
    assert len(await search(retrieval_channel, tenant, "pump note")) == 5
    assert len(await search(retrieval_channel, tenant, "pump note", top_k=50)) == 8


async def test_a_tenant_never_sees_another_tenants_chunks(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    other = tenant + "-b"
    await index(retrieval_channel, tenant, "pump", PUMP)
    assert await search(retrieval_channel, other, PUMP[0], top_k=50) == []
    assert await search(retrieval_channel, other, PUMP[0], document_ids=["pump"]) == []
    # each tenant sees only its own chunks when both have some, even under the same document id:
    # point ids include the tenant, so one tenant's write can never replace another's chunk
    await index(retrieval_channel, other, "pump", DRONE)
    theirs = await search(retrieval_channel, other, "Zephyr-9 pump Kestrel drone", top_k=50)
    assert {p.text for p in theirs} == set(DRONE)
    mine = await search(retrieval_channel, tenant, "Zephyr-9 pump Kestrel drone", top_k=50)
    assert {p.text for p in mine} == set(PUMP)


async def test_metadata_filters_narrow_the_search(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    await index(retrieval_channel, tenant, "pump", PUMP, {"team": "pumps", "lang": "en"})
    await index(retrieval_channel, tenant, "drone", DRONE, {"team": "drones", "lang": "en"})
    query = "Zephyr-9 Kestrel X2"
    assert {p.document_id for p in await search(retrieval_channel, tenant, query, top_k=10)} == {"pump", "drone"}
    drones = await search(retrieval_channel, tenant, query, top_k=10, filters={"team": "drones"})
    assert {p.document_id for p in drones} == {"drone"}
    both = await search(retrieval_channel, tenant, query, top_k=10, filters={"team": "pumps", "lang": "en"})
    assert {p.document_id for p in both} == {"pump"}
    assert await search(retrieval_channel, tenant, query, filters={"team": "ships"}) == []
    assert await search(retrieval_channel, tenant, query, filters={"team": "pumps", "lang": "de"}) == []


async def test_document_ids_restrict_the_search(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    await index(retrieval_channel, tenant, "pump", PUMP)
    await index(retrieval_channel, tenant, "drone", DRONE)
    found = await search(retrieval_channel, tenant, "Zephyr-9 pump", top_k=10, document_ids=["drone"])
    assert {p.document_id for p in found} == {"drone"}


async def test_the_score_threshold_drops_weak_matches(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    await index(retrieval_channel, tenant, "pump", PUMP)
    await index(retrieval_channel, tenant, "drone", DRONE)
    everything = await search(retrieval_channel, tenant, PUMP[0], top_k=10)
    assert len(everything) == 4
    strong = await search(retrieval_channel, tenant, PUMP[0], top_k=10, score_threshold=0.9)
    # The threshold applies to the dense (cosine) similarity: only the identical sentence (~1)
    # passes, also through the lexical side of hybrid search (scores are then fused ranks).
    assert [p.text for p in strong] == [PUMP[0]]
    assert await search(retrieval_channel, tenant, "completely unrelated words", score_threshold=0.9) == []


async def test_upserting_again_overwrites_instead_of_duplicating(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    await index(retrieval_channel, tenant, "pump", PUMP)
    await index(retrieval_channel, tenant, "pump", PUMP)
    passages = await search(retrieval_channel, tenant, "Zephyr-9", top_k=50)
    assert sorted(p.chunk_index for p in passages) == [0, 1]
    assert len({p.chunk_id for p in passages}) == 2


async def test_a_vector_of_the_wrong_dimension_is_refused_and_nothing_is_stored(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await index(retrieval_channel, tenant, "pump", PUMP, dimension=64)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert "64-dimensional" in details
    assert "RAG_EMBEDDER" in details
    assert await search(retrieval_channel, tenant, "Zephyr-9", top_k=50) == []


async def test_vectors_of_another_embedding_model_are_refused_and_nothing_is_stored(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    # Same dimension, another model: only the name the worker sends tells them apart.
    request = await upsert_request(tenant, "pump", PUMP)
    request.embedding_model = "all-MiniLM-L6-v2"
    drone = await upsert_request(tenant, "drone", DRONE)
    batch = retrieval_pb2.UpsertDocumentsChunksRequest(documents=[drone, request])
    for call in (stub(retrieval_channel).UpsertChunks(request), stub(retrieval_channel).UpsertDocumentsChunks(batch)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = info.value.details() or ""
        assert "'all-MiniLM-L6-v2'" in details
        assert f"'{HashingEmbedder(DIMENSION).name}'" in details
        assert "RAG_EMBEDDER" in details
    assert await search(retrieval_channel, tenant, "Zephyr-9 Kestrel", top_k=50) == []
    request.embedding_model = HashingEmbedder(DIMENSION).name  # the retrieval service's own model
    assert (await stub(retrieval_channel).UpsertChunks(request)).upserted == len(PUMP)


async def test_several_documents_are_upserted_in_one_call_each_under_its_own_tenant(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    other = tenant + "-b"
    request = retrieval_pb2.UpsertDocumentsChunksRequest(
        documents=[
            await upsert_request(tenant, "pump", PUMP, {"team": "pumps"}),
            await upsert_request(other, "drone", DRONE),
        ]
    )
    assert (await stub(retrieval_channel).UpsertDocumentsChunks(request)).upserted == 4
    mine = await search(retrieval_channel, tenant, "Zephyr-9 pump Kestrel drone", top_k=50)
    assert {(p.document_id, p.text, dict(p.metadata).get("team")) for p in mine} == {("pump", t, "pumps") for t in PUMP}
    theirs = await search(retrieval_channel, other, "Zephyr-9 pump Kestrel drone", top_k=50)
    assert {(p.document_id, p.text) for p in theirs} == {("drone", t) for t in DRONE}


async def test_a_batch_with_one_bad_document_stores_none_of_them(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    request = retrieval_pb2.UpsertDocumentsChunksRequest(
        documents=[
            await upsert_request(tenant, "pump", PUMP),
            await upsert_request(tenant, "drone", DRONE, dimension=64),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(retrieval_channel).UpsertDocumentsChunks(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "64-dimensional" in (info.value.details() or "")
    assert await search(retrieval_channel, tenant, "Zephyr-9 Kestrel", top_k=50) == []


async def test_delete_document_chunks_keeps_those_below_the_index(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    await index(retrieval_channel, tenant, "log", [f"station log entry {i}" for i in range(5)])
    await index(retrieval_channel, tenant, "other", ["station log of another document"])

    async def indexes() -> list[int]:
        found = await search(retrieval_channel, tenant, "station log entry", top_k=50, document_ids=["log"])
        return sorted(p.chunk_index for p in found)

    assert await indexes() == [0, 1, 2, 3, 4]
    await stub(retrieval_channel).DeleteDocumentChunks(
        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant, document_id="log", keep_below_index=2)
    )
    assert await indexes() == [0, 1]
    # another tenant's delete of the same document id removes nothing here
    await stub(retrieval_channel).DeleteDocumentChunks(
        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant + "-b", document_id="log")
    )
    assert await indexes() == [0, 1]
    await stub(retrieval_channel).DeleteDocumentChunks(
        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant, document_id="log")
    )
    assert await indexes() == []
    remaining = await search(retrieval_channel, tenant, "station log", top_k=50)
    assert {p.document_id for p in remaining} == {"other"}


async def test_delete_document_chunks_validation(retrieval_channel: grpc.aio.Channel, tenant: str) -> None:
    for request in (
        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant, document_id="d", keep_below_index=-1),
        retrieval_pb2.DeleteDocumentChunksRequest(tenant_id=tenant),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub(retrieval_channel).DeleteDocumentChunks(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_labels_with_dots_and_slashes_filter_as_themselves(
    retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    await index(retrieval_channel, tenant, "pump", PUMP, {"app.kubernetes.io/name": "pumps"})
    await index(retrieval_channel, tenant, "drone", DRONE, {"app.kubernetes.io/name": "drones"})
    found = await search(
        retrieval_channel, tenant, "Zephyr-9 Kestrel", top_k=10, filters={"app.kubernetes.io/name": "drones"}
    )
    assert {p.document_id for p in found} == {"drone"}
    error = await search_error(retrieval_channel, tenant_id=tenant, query="pump", filters={'bad"key': "x"})
    assert "invalid metadata filter key" in (error.details() or "")
