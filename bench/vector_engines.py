"""Embedded vector engines, measured side by side: qdrant-client local mode vs qdrant-edge-py.

For each size (default 10k and 100k chunks of 384-d vectors with the payload the platform stores:
tenant_id, document_id, filename, chunk_index, text, content_hash, metadata) and each engine:

* upsert time (batches of 256, as the ingestion worker sends them),
* top-5 query latency p50/p99 with the tenant filter applied (every platform search has it),
* for qdrant-edge also after `optimize()` (HNSW index built in-process; its build time is printed),
* persistence: close, reopen from disk (time), check the count and that a query still answers,
* size on disk.

Run:  .venv/bin/python bench/vector_engines.py [--sizes 10000 100000] [--engines edge local]
      [--queries 100] [--local-cap N]

`--local-cap N` upserts at most N points into qdrant-client local mode and extrapolates the upsert
time linearly to the full size (the table marks such figures with `~`); its query latencies are then
measured at N points and marked the same way. Without it everything is measured.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIMENSION = 384
TENANTS = 10
CHUNKS_PER_DOCUMENT = 20
BATCH = 256
WORDS = [
    *("cluster", "node", "pod", "service", "gateway", "retrieval", "vector", "embedding", "chunk"),
    *("token", "tenant", "query", "answer", "document", "ingestion", "worker", "queue", "latency"),
    *("throughput", "replica", "storage", "index", "payload", "filter", "score"),
]


@dataclass
class Figures:
    engine: str
    size: int
    upsert_s: float = 0.0
    upsert_extrapolated: bool = False
    query_p50_ms: float = 0.0
    query_p99_ms: float = 0.0
    query_at: int = 0
    optimize_s: float | None = None
    hnsw_p50_ms: float | None = None
    hnsw_p99_ms: float | None = None
    reopen_s: float = 0.0
    reopen_count_ok: bool = False
    disk_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


def make_corpus(size: int, seed: int = 7) -> tuple[np.ndarray[Any, Any], list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads: list[dict[str, Any]] = []
    ids: list[str] = []
    for i in range(size):
        doc = i // CHUNKS_PER_DOCUMENT
        tenant = f"tenant-{doc % TENANTS}"
        document_id = f"doc-{doc:07d}"
        chunk_index = i % CHUNKS_PER_DOCUMENT
        words = [WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(90)]  # ~650 characters, like a chunk
        payloads.append(
            {
                "tenant_id": tenant,
                "document_id": document_id,
                "filename": f"{document_id}.md",
                "chunk_index": chunk_index,
                "text": " ".join(words),
                "content_hash": f"{doc:064x}",
                "metadata": {"lang": "en" if doc % 3 else "fr", "source": "bench"},
            }
        )
        ids.append(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{document_id}:{chunk_index}")))
    return vectors, payloads, ids


def make_queries(count: int, seed: int = 11) -> tuple[np.ndarray[Any, Any], list[str]]:
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries, [f"tenant-{i % TENANTS}" for i in range(count)]


def batches(size: int) -> Iterator[range]:
    for start in range(0, size, BATCH):
        yield range(start, min(size, start + BATCH))


def latencies_ms(run_one: Callable[[int], int], count: int) -> tuple[float, float]:
    run_one(0)  # warm-up: first query pays lazy loading
    samples = []
    for i in range(count):
        start = time.perf_counter()
        hits = run_one(i)
        samples.append((time.perf_counter() - start) * 1000)
        assert hits == 5, f"expected 5 hits, got {hits}"
    samples.sort()
    p99_index = min(len(samples) - 1, round(0.99 * (len(samples) - 1)))
    return statistics.median(samples), samples[p99_index]


def disk_mb(path: Path) -> float:
    # Allocated blocks, not st_size: qdrant-edge preallocates sparse mmap files.
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) / 1e6


def bench_edge(size: int, queries: int, workdir: Path) -> Figures:
    import qdrant_edge as qe

    figures = Figures("qdrant-edge-py", size, query_at=size)
    vectors, payloads, ids = make_corpus(size)
    qvectors, qtenants = make_queries(queries + 1)
    path = workdir / f"edge-{size}"
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIMENSION, distance=qe.Distance.Cosine))
    shard = qe.EdgeShard.create(str(path), config)
    shard.update(qe.UpdateOperation.create_field_index("tenant_id", qe.KeywordIndexParams(is_tenant=True)))
    shard.update(qe.UpdateOperation.create_field_index("document_id", qe.PayloadSchemaType.Keyword))

    start = time.perf_counter()
    for rows in batches(size):
        points = [qe.Point(ids[i], vectors[i].tolist(), payloads[i]) for i in rows]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    figures.upsert_s = time.perf_counter() - start

    def query(s: Any) -> Callable[[int], int]:
        def run_one(i: int) -> int:
            request = qe.QueryRequest(
                limit=5,
                query=qe.Query.Nearest(qvectors[i].tolist()),
                with_payload=True,
                filter=qe.Filter(must=[qe.FieldCondition("tenant_id", match=qe.MatchValue(qtenants[i]))]),
            )
            return len(s.query(request))

        return run_one

    figures.query_p50_ms, figures.query_p99_ms = latencies_ms(query(shard), queries)
    start = time.perf_counter()
    shard.optimize()
    figures.optimize_s = time.perf_counter() - start
    figures.hnsw_p50_ms, figures.hnsw_p99_ms = latencies_ms(query(shard), queries)
    shard.close()
    del shard

    start = time.perf_counter()
    reopened = qe.EdgeShard.load(str(path))
    figures.reopen_s = time.perf_counter() - start
    figures.reopen_count_ok = reopened.count(qe.CountRequest(exact=True)) == size and query(reopened)(1) == 5
    reopened.close()
    figures.disk_mb = disk_mb(path)
    return figures


def bench_local(size: int, queries: int, workdir: Path, cap: int | None) -> Figures:
    from qdrant_client import QdrantClient, models

    stored = min(size, cap) if cap else size
    figures = Figures("qdrant-client local", size, query_at=stored)
    vectors, payloads, ids = make_corpus(stored)
    qvectors, qtenants = make_queries(queries + 1)
    path = workdir / f"local-{size}"
    client = QdrantClient(path=str(path))
    client.create_collection(
        "bench", vectors_config=models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE)
    )

    start = time.perf_counter()
    for rows in batches(stored):
        points = [models.PointStruct(id=ids[i], vector=vectors[i].tolist(), payload=payloads[i]) for i in rows]
        client.upsert("bench", points=points)
    figures.upsert_s = (time.perf_counter() - start) * size / stored
    figures.upsert_extrapolated = stored < size

    def query(c: QdrantClient) -> Callable[[int], int]:
        def run_one(i: int) -> int:
            flt = models.Filter(
                must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=qtenants[i]))]
            )
            return len(c.query_points("bench", query=qvectors[i].tolist(), query_filter=flt, limit=5).points)

        return run_one

    figures.query_p50_ms, figures.query_p99_ms = latencies_ms(query(client), queries)
    client.close()

    start = time.perf_counter()
    reopened = QdrantClient(path=str(path))
    figures.reopen_s = time.perf_counter() - start
    figures.reopen_count_ok = reopened.count("bench", exact=True).count == stored and query(reopened)(1) == 5
    reopened.close()
    figures.disk_mb = disk_mb(path)
    return figures


def fmt(value: float | None, extrapolated: bool = False, digits: int = 1) -> str:
    if value is None:
        return "-"
    return ("~" if extrapolated else "") + f"{value:.{digits}f}"


HEADER = (
    f"{'engine':<20} {'chunks':>7} {'upsert s':>9} {'filt p50 ms':>11} {'filt p99 ms':>11} "
    f"{'optimize s':>10} {'hnsw p50':>8} {'hnsw p99':>8} {'reopen s':>8} {'persist':>7} {'disk MB':>8}"
)


def row(f: Figures) -> str:
    partial = f.query_at < f.size
    return (
        f"{f.engine:<20} {f.size:>7} {fmt(f.upsert_s, f.upsert_extrapolated):>9} "
        f"{fmt(f.query_p50_ms, partial, 2):>11} {fmt(f.query_p99_ms, partial, 2):>11} "
        f"{fmt(f.optimize_s):>10} {fmt(f.hnsw_p50_ms, digits=2):>8} {fmt(f.hnsw_p99_ms, digits=2):>8} "
        f"{fmt(f.reopen_s, digits=2):>8} {'ok' if f.reopen_count_ok else 'FAIL':>7} {fmt(f.disk_mb):>8}"
        + (f"   (queries at {f.query_at} points)" if partial else "")
    )


def print_table(results: list[Figures]) -> None:
    print(HEADER)
    print("-" * len(HEADER))
    for f in results:
        print(row(f))
    by_key = {(f.engine, f.size): f for f in results}
    print("\nratios (qdrant-client local / qdrant-edge-py, higher = edge faster):")
    for size in sorted({f.size for f in results}):
        local, edge = by_key.get(("qdrant-client local", size)), by_key.get(("qdrant-edge-py", size))
        if not (local and edge):
            continue
        print(
            f"  {size:>7} chunks: upsert x{local.upsert_s / edge.upsert_s:.0f}, "
            f"filtered query p50 x{local.query_p50_ms / edge.query_p50_ms:.0f} (plain) / "
            f"x{local.query_p50_ms / (edge.hnsw_p50_ms or edge.query_p50_ms):.0f} (after optimize), "
            f"p99 x{local.query_p99_ms / edge.query_p99_ms:.0f}, reopen x{local.reopen_s / edge.reopen_s:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", choices=["edge", "local"], default=["edge", "local"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--local-cap", type=int, default=None)
    args = parser.parse_args()

    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="vector-bench-") as tmp:
        for size in args.sizes:
            for engine in args.engines:
                started = time.perf_counter()
                if engine == "edge":
                    figures = bench_edge(size, args.queries, Path(tmp))
                else:
                    figures = bench_local(size, args.queries, Path(tmp), args.local_cap)
                results.append(figures)
                print(f"# {engine} {size}: done in {time.perf_counter() - started:.0f} s", flush=True)
                print("# " + row(figures), flush=True)
                shutil.rmtree(Path(tmp) / f"{engine}-{size}", ignore_errors=True)
    print()
    print_table(results)


if __name__ == "__main__":
    main()
