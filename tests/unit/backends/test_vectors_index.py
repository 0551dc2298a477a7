"""The embedded store's background HNSW index (qdrant-edge-py, the real engine and a real build
process), on small generated sets with small thresholds so that a build takes seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ragplatform.backends.vectors.edge_index import EdgeIndexSettings, threshold_kb, unindexed_chunks
from ragplatform.backends.vectors.edge_swap import finish_interrupted_swap
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore, IndexStatus, index_build_dirs
from ragplatform.backends.vectors.factory import open_vector_store
from ragplatform.core.settings import VectorSettings, load_settings
from ragplatform.domain.models import ChunkPoint, SearchQuery
from ragplatform.domain.sparse_encoding import query_vector

DIM = 32
SMALL = EdgeIndexSettings(threshold=300, m=8, ef_construct=48, search_ef=64, settle_seconds=0.2)
BUILD_TIMEOUT = 180.0


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    """Unit vectors near random cluster centres: structured like text embeddings, unlike uniform
    noise, on which no approximate index (and no embedder) is ever used."""
    picks = centers[rng.integers(0, len(centers), n)]
    v = picks + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def chunks(vectors: np.ndarray, first: int, tenant: str = "t1", document: str | None = None) -> list[ChunkPoint]:
    return [
        ChunkPoint(
            tenant_id=tenant,
            document_id=document or f"doc-{(first + i) // 20}",
            filename="f.txt",
            chunk_index=(first + i) % 20 if document is None else first + i,
            text=f"chunk number{first + i} about word{(first + i) % 37}",
            vector=vector.tolist(),
        )
        for i, vector in enumerate(vectors)
    ]


async def upsert(store: EdgeVectorStore, points: list[ChunkPoint]) -> None:
    for start in range(0, len(points), 200):
        await store.upsert(points[start : start + 200])


async def wait_for(store: EdgeVectorStore, done: object, what: str, failures_expected: bool = False) -> IndexStatus:
    deadline = time.monotonic() + BUILD_TIMEOUT
    while time.monotonic() < deadline:
        status = store.index_status()
        assert failures_expected or not status.last_error, status.last_error
        if callable(done) and done(status):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}: {store.index_status()}")


async def top_ids(store: EdgeVectorStore, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    results = []
    for q in queries:
        hits = await store.search(SearchQuery(tenant_id="t1", vector=q.tolist(), top_k=k))
        results.append([hit.chunk_id for hit in hits])
    return results


def exact_top_ids(points: list[ChunkPoint], queries: np.ndarray, k: int = 10) -> list[list[str]]:
    matrix = np.array([p.vector for p in points], dtype=np.float32)
    ids = [p.point_id for p in points]
    scores = queries @ matrix.T
    return [[ids[j] for j in np.argsort(-row)[:k]] for row in scores]


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def test_thresholds_are_counted_in_chunks_and_unindexed_chunks_from_engine_counters() -> None:
    assert threshold_kb(20_000, 384) == 30_000  # 20,000 x 384 floats x 4 bytes
    assert threshold_kb(1, 8) == 1
    # every chunk has a sparse vector (always indexed) beside its dense one
    assert unindexed_chunks(points=1000, indexed_vectors=1000) == 1000
    assert unindexed_chunks(points=1000, indexed_vectors=1700) == 300
    assert unindexed_chunks(points=1000, indexed_vectors=2000) == 0


def test_the_index_settings_reach_the_embedded_store(tmp_path: Path) -> None:
    settings = load_settings(
        VectorSettings,
        data_dir=tmp_path,
        vector_index_threshold=1234,
        vector_index_settle_seconds=0.5,
        vector_index_build_threads=2,
        vector_hnsw_m=12,
        vector_hnsw_ef_construct=64,
        vector_hnsw_ef=77,
        vector_search_threads=3,
    )
    store = open_vector_store(settings)
    assert isinstance(store, EdgeVectorStore)
    assert store.index_settings == EdgeIndexSettings(
        threshold=1234, m=12, ef_construct=64, search_ef=77, build_threads=2, settle_seconds=0.5, search_threads=3
    )
    assert load_settings(VectorSettings, data_dir=tmp_path).vector_search_threads == 1


def search_threads() -> list[str]:
    """The names of this process's threads that are the engine's search pool."""
    names = (Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task"))
    return [name for name in names if name.startswith("edge-search")]


@pytest.mark.parametrize("threads", [1, 2])
async def test_a_store_searches_on_the_threads_the_setting_gives_it(tmp_path: Path, threads: int) -> None:
    """RAG_VECTOR_SEARCH_THREADS reaches the engine: its search pool has that many threads (the
    engine's own default is one per core, at least four), and the store still answers."""
    rng = np.random.default_rng(3)
    before = len(search_threads())
    store = EdgeVectorStore(tmp_path / "v", EdgeIndexSettings(threshold=0, search_threads=threads))
    await store.open(DIM)
    try:
        vectors = clustered(rng, 20, rng.standard_normal((2, DIM)).astype(np.float32))
        await store.upsert(chunks(vectors, 0))
        hits = await store.search(SearchQuery(tenant_id="t1", vector=vectors[0].tolist(), top_k=3))
        assert len(search_threads()) - before == threads
    finally:
        await store.close()
    assert hits[0].chunk_index == 0


async def test_a_small_store_stays_exact_and_builds_no_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = EdgeVectorStore(tmp_path / "v", SMALL)
    await store.open(DIM)
    try:
        await upsert(store, chunks(clustered(rng, 100, rng.standard_normal((5, DIM))), 0))
        await asyncio.sleep(SMALL.settle_seconds * 5)
        status = store.index_status()
        assert status.builds == ()
        assert not status.building
        assert status.unindexed == 100
    finally:
        await store.close()


async def test_an_index_build_keeps_results_finds_writes_made_during_and_after_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, DIM)).astype(np.float32)
    first = chunks(clustered(rng, 1200, centers), 0)
    other_tenant = chunks(clustered(rng, 400, centers), 5000, tenant="t2")
    queries = clustered(rng, 40, centers)
    store = EdgeVectorStore(tmp_path / "v", SMALL)
    await store.open(DIM)
    try:
        await upsert(store, first + other_tenant)
        before = await top_ids(store, queries)
        truth = exact_top_ids(first, queries)
        assert recall(before, truth) == 1.0  # unindexed: exact

        # Writes while the build runs: new chunks and a deleted document.
        await wait_for(store, lambda s: s.building, "a build starts")
        during = chunks(clustered(rng, 50, centers), 2000, document="during")
        await store.upsert(during)
        await store.delete_document("t1", "doc-0")
        status = await wait_for(store, lambda s: s.builds and not s.building, "the build is swapped in")

        build = status.builds[0]
        assert build.optimized
        assert build.replayed >= 2
        assert status.unindexed < SMALL.threshold
        remaining = [p for p in first if p.document_id != "doc-0"]
        assert await store.count("t1") == len(remaining) + len(during)

        after = await top_ids(store, queries)
        truth = exact_top_ids(remaining + during, queries)
        assert recall(after, truth) >= 0.9, recall(after, truth)
        for point in during[:10]:  # each write made during the build is found
            hits = await store.search(SearchQuery(tenant_id="t1", vector=point.vector, top_k=1))
            assert hits[0].chunk_id == point.point_id
        found = {h.document_id for h in await store.search(SearchQuery(tenant_id="t1", vector=first[0].vector))}
        assert "doc-0" not in found

        # A write after the build sits in the unindexed segment: found at once.
        late = chunks(clustered(rng, 5, centers), 3000, document="late")
        await store.upsert(late)
        hits = await store.search(SearchQuery(tenant_id="t1", vector=late[3].vector, top_k=1))
        assert hits[0].chunk_id == late[3].point_id

        # Sparse and hybrid searches still work on the indexed store.
        term = query_vector("number42")
        sparse = await store.search(SearchQuery(tenant_id="t1", vector=[], sparse=term, top_k=1))
        assert sparse[0].chunk_id == first[42].point_id
        hybrid = await store.search(SearchQuery(tenant_id="t1", vector=first[42].vector, sparse=term, top_k=1))
        assert hybrid[0].chunk_id == first[42].point_id
    finally:
        await store.close()
    assert not index_build_dirs(tmp_path / "v").staging.exists()

    reopened = EdgeVectorStore(tmp_path / "v", SMALL)
    await reopened.open(DIM)
    try:
        assert await reopened.count("t1") == len(remaining) + len(during) + len(late)
        assert reopened.index_status().unindexed < SMALL.threshold  # the index survived the restart
    finally:
        await reopened.close()


async def test_a_build_overtaken_by_more_writes_than_the_threshold_is_redone(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    centers = rng.standard_normal((20, DIM)).astype(np.float32)
    store = EdgeVectorStore(tmp_path / "v", SMALL)
    await store.open(DIM)
    try:
        await upsert(store, chunks(clustered(rng, 600, centers), 0))
        await wait_for(store, lambda s: s.building, "a build starts")
        late = chunks(clustered(rng, SMALL.threshold + 100, centers), 1000)
        await upsert(store, late)  # more than the threshold: the copy would be stale
        status = await wait_for(store, lambda s: s.builds and not s.building, "a build completes", True)
        assert "written during the build" in status.last_error
        assert status.builds[0].points == 600 + len(late)  # the build that completed is the second
        assert await store.count("t1") == 600 + len(late)
        hits = await store.search(SearchQuery(tenant_id="t1", vector=late[-1].vector, top_k=1))
        assert hits[0].chunk_id == late[-1].point_id
    finally:
        await store.close()


def test_a_process_killed_during_a_build_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v"
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        import numpy as np
        from pathlib import Path
        sys.path[:0] = {sys.path!r}
        from tests.unit.backends.test_vectors_index import SMALL, DIM, chunks, clustered, upsert
        from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore

        async def main():
            rng = np.random.default_rng(3)
            store = EdgeVectorStore(Path({str(path)!r}), SMALL)
            await store.open(DIM)
            await upsert(store, chunks(clustered(rng, 1000, rng.standard_normal((20, DIM))), 0))
            while not store.index_status().building:
                await asyncio.sleep(0.01)
            print("building", flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "building"
        time.sleep(0.3)  # into the copy or the build process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    async def reopen() -> tuple[int, int]:
        store = EdgeVectorStore(path, EdgeIndexSettings(threshold=0))
        await store.open(DIM)
        try:
            hits = await store.search(SearchQuery(tenant_id="t1", vector=[1.0] + [0.0] * (DIM - 1)))
            return await store.count("t1"), len(hits)
        finally:
            await store.close()

    assert asyncio.run(reopen()) == (1000, 5)
    assert not index_build_dirs(path).staging.exists()


def test_a_swap_cut_between_its_renames_is_completed_on_open(tmp_path: Path) -> None:
    dirs = index_build_dirs(tmp_path / "v")
    dirs.staging.mkdir()
    (dirs.staging / "new").write_text("complete copy")
    dirs.backup.mkdir()  # the first rename happened, the second did not
    finish_interrupted_swap(dirs)
    assert (dirs.store / "new").read_text() == "complete copy"
    assert not dirs.backup.exists()
    assert not dirs.staging.exists()


@pytest.mark.parametrize("threshold", [0])
async def test_indexing_can_be_turned_off(tmp_path: Path, threshold: int) -> None:
    rng = np.random.default_rng(2)
    store = EdgeVectorStore(tmp_path / "v", EdgeIndexSettings(threshold=threshold, settle_seconds=0))
    await store.open(DIM)
    try:
        await upsert(store, chunks(clustered(rng, 400, rng.standard_normal((5, DIM))), 0))
        await asyncio.sleep(0.5)
        status = store.index_status()
        assert status.builds == ()
        assert status.unindexed == 400
    finally:
        await store.close()
