"""Hybrid search in the embedded engine (qdrant-edge-py, the real engine): sparse BM25 vectors
beside the dense ones, fusion in one query, and the upgrade of a store made without them."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe

from ragplatform.backends.vectors import payload as fields
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.backends.vectors.embedded_edge_upgrade import finish_interrupted_upgrade, has_sparse_vector
from ragplatform.domain.fusion import relative_score_fusion
from ragplatform.domain.models import ChunkPoint, HybridFusion, SearchQuery, SparseVector
from ragplatform.domain.sparse_encoding import query_vector, term_id

DIM = 4


def unit(*components: float) -> list[float]:
    vector = [*components, *([0.0] * (DIM - len(components)))]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


TEXTS = {
    "gzip": "gzip compresses files with Lempel-Ziv coding; --keep keeps the input file.",
    "bzip2": "bzip2 compresses files using the Burrows-Wheeler block sorting text compression algorithm.",
    "tar": "tar saves many files together into a single tape or disk archive.",
    "du": "du estimates file space usage, summarising disk usage of each directory recursively.",
}
# Dense vectors that deliberately disagree with the words: to the query vector unit(1), "du" is
# nearest, then tar, gzip, and bzip2 last.
VECTORS = {"du": unit(1), "tar": unit(1, 0, 0, 1), "gzip": unit(0.2, 1), "bzip2": unit(0, 0, 1)}


def chunk(tenant: str, name: str) -> ChunkPoint:
    return ChunkPoint(
        tenant_id=tenant,
        document_id=name,
        filename=f"{name}.1.txt",
        chunk_index=0,
        text=TEXTS[name],
        vector=VECTORS[name],
    )


async def filled(path: Path) -> EdgeVectorStore:
    store = EdgeVectorStore(path)
    await store.open(DIM)
    await store.upsert([chunk("t1", name) for name in TEXTS] + [chunk("t2", "gzip")])
    return store


async def test_sparse_search_ranks_by_bm25_within_the_tenant(tmp_path: Path) -> None:
    store = await filled(tmp_path / "v")
    try:
        hits = await store.search(SearchQuery("t1", [], top_k=10, sparse=query_vector("Burrows-Wheeler compression")))
        assert [h.document_id for h in hits][:1] == ["bzip2"]
        assert {h.document_id for h in hits} <= {"gzip", "bzip2"}  # only chunks sharing a term
        # IDF: "files" is in three of t1's chunks... and one of t2's: rarer terms weigh more.
        ranked = await store.search(SearchQuery("t1", [], top_k=10, sparse=query_vector("keep files")))
        assert ranked[0].document_id == "gzip"
        other = await store.search(SearchQuery("t2", [], top_k=10, sparse=query_vector("Burrows-Wheeler gzip")))
        assert [(h.document_id, h.filename) for h in other] == [("gzip", "gzip.1.txt")]
    finally:
        await store.close()


async def test_hybrid_fuses_dense_and_sparse_in_one_query(tmp_path: Path) -> None:
    store = await filled(tmp_path / "v")
    try:
        query = "block sorting compression"
        dense_only = await store.search(SearchQuery("t1", unit(1), top_k=2))
        assert dense_only[0].document_id == "du"
        rrf = await store.search(SearchQuery("t1", unit(1), top_k=4, sparse=query_vector(query)))
        assert {h.document_id for h in rrf[:2]} == {"du", "bzip2"}  # each list's best
        lexical = HybridFusion(dense_weight=1.0, sparse_weight=3.0)
        weighted = await store.search(SearchQuery("t1", unit(1), top_k=4, sparse=query_vector(query), fusion=lexical))
        assert weighted[0].document_id == "bzip2"
        # bzip2 is the sparse list's only hit and beyond the dense list's two candidates.
        semantic = HybridFusion(dense_weight=3.0, sparse_weight=1.0, candidates=2)
        weighted = await store.search(SearchQuery("t1", unit(1), top_k=2, sparse=query_vector(query), fusion=semantic))
        assert weighted[0].document_id == "du"
        dbsf = await store.search(
            SearchQuery("t1", unit(1), top_k=4, sparse=query_vector(query), fusion=HybridFusion(method="dbsf"))
        )
        assert {h.document_id for h in dbsf[:2]} == {"du", "bzip2"}
        assert all(h.filename.endswith(".1.txt") and h.text for h in dbsf)
        # The tenant filter holds in every prefetch: t2 only ever sees its own chunk.
        t2 = await store.search(SearchQuery("t2", unit(1), top_k=4, sparse=query_vector(query)))
        assert [h.document_id for h in t2] == ["gzip"]
    finally:
        await store.close()


async def test_relative_fusion_fuses_the_two_lists_by_normalised_score(tmp_path: Path) -> None:
    store = await filled(tmp_path / "v")
    try:
        terms = query_vector("block sorting compression files")
        dense = await store.search(SearchQuery("t1", unit(1), top_k=50))
        sparse = await store.search(SearchQuery("t1", [], top_k=50, sparse=terms))
        expected = relative_score_fusion(
            [(h.chunk_id, h.score) for h in dense], [(h.chunk_id, h.score) for h in sparse], 1.0, 0.5, 3
        )
        relative = HybridFusion(method="relative", sparse_weight=0.5)
        fused = await store.search(SearchQuery("t1", unit(1), top_k=3, sparse=terms, fusion=relative))
        assert [h.chunk_id for h in fused] == [key for key, _ in expected]
        assert [h.score for h in fused] == pytest.approx([score for _, score in expected])
        assert fused[0].document_id == "du"
        assert fused[0].score == pytest.approx(1.0)
        assert all(h.text == TEXTS[h.document_id] and h.filename.endswith(".1.txt") for h in fused)
        lexical = HybridFusion(method="relative", sparse_weight=3.0)
        assert (await store.search(SearchQuery("t1", unit(1), top_k=1, sparse=terms, fusion=lexical)))[
            0
        ].document_id == "bzip2"
        # A threshold keeps the lexical side to the dense candidates above it; tenants stay apart.
        strict = await store.search(
            SearchQuery("t1", unit(1), top_k=4, sparse=terms, score_threshold=0.6, fusion=relative)
        )
        assert [h.document_id for h in strict] == ["du", "tar"]
        t2 = await store.search(SearchQuery("t2", unit(1), top_k=4, sparse=terms, fusion=relative))
        assert [h.document_id for h in t2] == ["gzip"]
    finally:
        await store.close()


WORDS_ONLY = "bm25"  # the sparse vector's name before adjacent-word pairs were indexed


@pytest.mark.parametrize("previous", ["dense only", "words-only sparse vector"])
async def test_a_store_made_before_sparse_vectors_is_reindexed_on_open(tmp_path: Path, previous: str) -> None:
    path = tmp_path / "old"
    path.mkdir()
    # A store as an earlier release made it: the dense vector only, or words-only sparse vectors.
    sparse_params = {WORDS_ONLY: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if "sparse" in previous else None
    dense_params = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)
    old = qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=dense_params, sparse_vectors=sparse_params))
    points = [chunk("t1", name) for name in TEXTS]

    def old_vectors(p: ChunkPoint) -> Any:
        if sparse_params is None:
            return p.vector
        words = query_vector(p.text)  # the words, without the pairs
        return {"": p.vector, WORDS_ONLY: qe.SparseVector(list(words.indices), list(words.values))}

    old.update(
        qe.UpdateOperation.upsert_points(
            [qe.Point(p.point_id, old_vectors(p), fields.chunk_payload(p)) for p in points]
        )
    )
    old.flush()
    old.close()
    assert not has_sparse_vector(path)

    store = EdgeVectorStore(path)
    await store.open(DIM)
    try:
        assert has_sparse_vector(path)
        assert await store.count("t1") == len(TEXTS)  # nothing lost
        hits = await store.search(SearchQuery("t1", [], top_k=1, sparse=query_vector("tape archive")))
        assert hits[0].document_id == "tar"
        assert hits[0].text == TEXTS["tar"]
        # The pairs are indexed too: a query for the pair alone finds its chunk.
        pair = SparseVector((term_id("block sort"),), (1.0,))
        assert [h.document_id for h in await store.search(SearchQuery("t1", [], top_k=3, sparse=pair))] == ["bzip2"]
        dense = await store.search(SearchQuery("t1", unit(1), top_k=1))
        assert dense[0].document_id == "du"  # dense vectors carried over
    finally:
        await store.close()
    assert not (tmp_path / "old.upgrading").exists()
    assert not (tmp_path / "old.pre-hybrid").exists()


@pytest.mark.parametrize("crash_point", ["copy_unfinished", "between_renames"])
async def test_an_interrupted_upgrade_leaves_a_whole_store(tmp_path: Path, crash_point: str) -> None:
    path = tmp_path / "v"
    store = await filled(path)
    await store.close()
    staging, backup = tmp_path / "v.upgrading", tmp_path / "v.pre-hybrid"
    if crash_point == "copy_unfinished":
        staging.mkdir()
        (staging / "junk").write_text("half a copy")
    else:  # the old store was moved aside, the finished copy not yet moved in
        shutil.copytree(path, staging)
        path.rename(backup)
    finish_interrupted_upgrade(path)
    assert not staging.exists()
    assert not backup.exists()
    reopened = EdgeVectorStore(path)
    await reopened.open(DIM)
    try:
        assert await reopened.count("t1") == len(TEXTS)
    finally:
        await reopened.close()
