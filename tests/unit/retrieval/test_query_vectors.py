"""The query-vector LRU cache: hits return the embedder's vector without calling it, per tenant,
bounded, least recently used first out; and RetrievalService uses it for dense queries."""

from __future__ import annotations

from pathlib import Path

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.domain.models import ChunkPoint
from ragplatform.retrieval.query_vectors import QueryVectors
from ragplatform.retrieval.service import RetrievalService

DIM = 32


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording the texts it embedded as queries."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.embedded: list[str] = []

    async def embed_query(self, text: str) -> list[float]:
        self.embedded.append(text)
        return await super().embed_query(text)


async def test_a_repeated_text_is_served_from_the_cache_as_a_fresh_copy() -> None:
    embedder = CountingEmbedder(DIM)
    cache = QueryVectors(embedder, size=8)
    first = await cache.vector("t", "how do I rotate keys")
    first[0] = 99.0  # the caller's copy: changing it must not change what the cache serves
    second = await cache.vector("t", "how do I rotate keys")
    assert second == await HashingEmbedder(DIM).embed_query("how do I rotate keys")
    assert embedder.embedded == ["how do I rotate keys"]
    assert (cache.hits, cache.misses) == (1, 1)
    # Exact text: another spelling is another query.
    await cache.vector("t", "How do I rotate keys")
    assert embedder.embedded == ["how do I rotate keys", "How do I rotate keys"]


async def test_tenants_do_not_share_entries() -> None:
    embedder = CountingEmbedder(DIM)
    cache = QueryVectors(embedder, size=8)
    a = await cache.vector("tenant-a", "same question")
    b = await cache.vector("tenant-b", "same question")
    assert a == b
    assert embedder.embedded == ["same question", "same question"]  # no cross-tenant hit to time


async def test_the_least_recently_used_text_goes_first_when_full() -> None:
    embedder = CountingEmbedder(DIM)
    cache = QueryVectors(embedder, size=2)
    for text in ("one", "two", "one", "three"):  # "one" used again: "two" is the oldest
        await cache.vector("t", text)
    embedder.embedded.clear()
    for text in ("one", "three", "two"):
        await cache.vector("t", text)
    assert embedder.embedded == ["two"]


async def test_size_zero_caches_nothing() -> None:
    embedder = CountingEmbedder(DIM)
    cache = QueryVectors(embedder, size=0)
    for _ in range(3):
        await cache.vector("t", "again")
    assert embedder.embedded == ["again"] * 3
    assert cache.hits == 0


async def test_search_embeds_a_repeated_question_once(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "v")
    await store.open(DIM)
    try:
        text = "tar stores many files in one tape archive"
        [vector] = await HashingEmbedder(DIM).embed_documents([text])
        await store.upsert([ChunkPoint("t", "tar", "tar.txt", 0, text, vector)])
        embedder = CountingEmbedder(DIM)
        service = RetrievalService(embedder, store, 50, query_cache_size=4)
        first = await service.search("t", "  tape archive ", 5, {}, 0.0)
        again = await service.search("t", "tape archive", 5, {}, 0.0)  # the same once stripped
        assert [h.document_id for h in first] == [h.document_id for h in again] == ["tar"]
        assert first[0].score == again[0].score
        assert embedder.embedded == ["tape archive"]
    finally:
        await store.close()
