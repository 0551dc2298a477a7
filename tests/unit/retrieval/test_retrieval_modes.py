"""RetrievalService's modes over the real embedded store and the hashing embedder: what each mode
computes per query, and that the settings reach the policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import RetrievalSettings, load_settings
from ragplatform.domain.models import ChunkPoint, HybridFusion
from ragplatform.retrieval.app import retrieval_policy
from ragplatform.retrieval.service import RetrievalPolicy, RetrievalService

DIM = 64
TEXTS = {
    "gzip": "gzip compresses files; --keep keeps the input files",
    "tar": "tar stores many files in one tape archive",
    "du": "du estimates file space usage per directory",
}


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting query embeddings."""

    queries = 0

    async def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return await super().embed_query(text)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    vectors = EdgeVectorStore(tmp_path / "v")
    await vectors.open(DIM)
    embedded = await HashingEmbedder(DIM).embed_documents(list(TEXTS.values()))
    await vectors.upsert(
        [
            ChunkPoint("t", name, f"{name}.1.txt", 0, text, v)
            for (name, text), v in zip(TEXTS.items(), embedded, strict=True)
        ]
    )
    yield vectors
    await vectors.close()


async def test_sparse_mode_never_embeds_and_dense_mode_needs_no_terms(store: EdgeVectorStore) -> None:
    embedder = CountingEmbedder(DIM)
    sparse = RetrievalService(embedder, store, 50, RetrievalPolicy(mode="sparse"))
    hits = await sparse.search("t", "tape archive", 5, {}, 0.0)
    assert [h.document_id for h in hits] == ["tar"]  # only chunks sharing a term
    assert embedder.queries == 0
    assert await sparse.search("t", "the of and", 5, {}, 0.0) == []  # stopwords only: nothing to match
    dense = RetrievalService(embedder, store, 50, RetrievalPolicy(mode="dense"))
    assert len(await dense.search("t", "the of and", 5, {}, 0.0)) == 3  # dense always has neighbours
    assert embedder.queries == 1
    hybrid = RetrievalService(embedder, store, 50)
    found = await hybrid.search("t", "tape archive", 5, {}, 0.0)
    assert found[0].document_id == "tar"
    assert len(found) == 3  # the dense list brings the rest
    assert embedder.queries == 2


def test_settings_become_the_policy() -> None:
    default = retrieval_policy(load_settings(RetrievalSettings))
    relative = HybridFusion(method="relative", dense_weight=1.0, sparse_weight=0.5)
    assert default == RetrievalPolicy(mode="hybrid", fusion=relative, rerank_candidates=20, sparse_pair_weight=1.0)
    # An unset sparse weight is the chosen method's default.
    assert retrieval_policy(load_settings(RetrievalSettings, fusion="rrf")).fusion == HybridFusion(method="rrf")
    tuned = retrieval_policy(
        load_settings(
            RetrievalSettings,
            retrieval_mode="dense",
            fusion="dbsf",
            fusion_dense_weight=2,
            fusion_sparse_weight=0.5,
            fusion_rrf_k=10,
            fusion_candidates=80,
            rerank_candidates=30,
            sparse_pair_weight=0,
        )
    )
    assert tuned == RetrievalPolicy(
        mode="dense",
        fusion=HybridFusion(method="dbsf", dense_weight=2, sparse_weight=0.5, rrf_k=10, candidates=80),
        rerank_candidates=30,
        sparse_pair_weight=0.0,
    )


async def test_the_service_searches_with_relative_fusion(store: EdgeVectorStore) -> None:
    embedder = HashingEmbedder(DIM)
    relative = RetrievalPolicy(fusion=HybridFusion(method="relative", sparse_weight=0.5))
    service = RetrievalService(embedder, store, 50, relative)
    found = await service.search("t", "tape archive", 5, {}, 0.0)
    assert found[0].document_id == "tar"  # the sparse list's only hit, and dense's nearest
    assert len(found) == 3
    assert found[0].score == 1.5
    assert all(0.0 <= h.score <= 1.5 for h in found)
    assert found[0].text == TEXTS["tar"]
    assert [h.document_id for h in await service.search("t", "tape archive", 1, {}, 0.0)] == ["tar"]
    # A threshold above every dense score leaves nothing: the sparse side cannot bring "tar" back.
    assert await service.search("t", "tape archive", 5, {}, 0.99) == []


async def test_query_words_in_their_order_rank_the_chunk_that_has_them_adjacent(tmp_path: Path) -> None:
    # The same words in both chunks, in another order: plain BM25 cannot tell them apart.
    texts = {
        "apart": "usage counts per disk block",
        "adjacent": "disk usage counts per block",
        "tar": "tar stores many files in one tape archive",
    }
    embedder = HashingEmbedder(DIM)
    vectors = EdgeVectorStore(tmp_path / "pairs")
    await vectors.open(DIM)
    try:
        embedded = await embedder.embed_documents(list(texts.values()))
        await vectors.upsert(
            [ChunkPoint("t", n, f"{n}.txt", 0, text, v) for (n, text), v in zip(texts.items(), embedded, strict=True)]
        )
        words_only = RetrievalService(embedder, vectors, 50, RetrievalPolicy(mode="sparse"))
        plain = await words_only.search("t", "disk usage", 5, {}, 0.0)
        assert {h.document_id for h in plain} == {"apart", "adjacent"}
        assert plain[0].score == pytest.approx(plain[1].score)
        paired = RetrievalService(embedder, vectors, 50, RetrievalPolicy(mode="sparse", sparse_pair_weight=1.0))
        hits = await paired.search("t", "disk usage", 5, {}, 0.0)
        assert [h.document_id for h in hits] == ["adjacent", "apart"]
        assert hits[0].score > hits[1].score * 1.2
    finally:
        await vectors.close()
