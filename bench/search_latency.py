"""Search latency, and what each retrieval stage adds: the gateway's `Search` (auth, gateway ->
retrieval hop, query encoding, tenant-filtered search) with RAG_RETRIEVAL_MODE=dense and =hybrid,
against direct in-process store calls (dense, sparse, hybrid), at 10k and 100k chunks, in one run.

    python bench/search_latency.py [--sizes 10000 100000] [--queries 300]

Vectors are random unit vectors (what is measured is latency, not relevance); chunk texts are
120 words drawn from a Zipf distribution over a 20,000-word vocabulary, so the sparse index has
the skewed posting lists of real text; queries are 6 such words. Half the chunks belong to
another tenant. The gateway path embeds the query with the `hashing` embedder. There is no
reranker row: no reranking model can run here (see docs/retrieval.md); a remote reranker adds
its own round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform.backends.vectors.factory import open_vector_store
from ragplatform.client import GatewayClient
from ragplatform.core.settings import RetrievalSettings, load_settings
from ragplatform.domain.models import ChunkPoint, SearchQuery
from ragplatform.domain.sparse_encoding import query_vector
from tests.support.platform_processes import PlatformProcesses

TENANT = "bench"
DIMENSION = 384
VOCABULARY = 20_000
CHUNK_WORDS = 120
QUERY_WORDS = 6


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def zipf_text(rng: np.random.Generator, words: int) -> str:
    ranks = np.minimum(rng.zipf(1.1, words), VOCABULARY)
    return " ".join(f"term{r}" for r in ranks)


async def populate(data_dir: Path, size: int, rng: np.random.Generator) -> None:
    settings = load_settings(RetrievalSettings, data_dir=data_dir, embedder="hashing")
    store = open_vector_store(settings)
    await store.open(DIMENSION)
    try:
        batch = 2000
        for start in range(0, size, batch):
            vectors = unit_vectors(rng, min(batch, size - start))
            points = [
                ChunkPoint(
                    tenant_id=TENANT if (start + i) % 2 == 0 else "other-tenant",
                    document_id=f"doc-{(start + i) // 50}",
                    filename=f"doc-{(start + i) // 50}.txt",
                    chunk_index=(start + i) % 50,
                    text=zipf_text(rng, CHUNK_WORDS),
                    vector=vec.tolist(),
                )
                for i, vec in enumerate(vectors)
            ]
            await store.upsert(points)
    finally:
        await store.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


async def direct(data_dir: Path, queries: list[str], rng: np.random.Generator) -> dict[str, list[float]]:
    """Store-only latency per mode; the sparse encoding of the query is timed with the search."""
    settings = load_settings(RetrievalSettings, data_dir=data_dir, embedder="hashing")
    store = open_vector_store(settings)
    await store.open(DIMENSION)
    samples: dict[str, list[float]] = {"dense": [], "sparse": [], "hybrid": []}
    try:
        for text, vec in zip(queries, unit_vectors(rng, len(queries)), strict=True):
            for mode in samples:
                started = time.perf_counter()
                sparse = query_vector(text) if mode != "dense" else None
                vector = vec.tolist() if mode != "sparse" else []
                await store.search(SearchQuery(tenant_id=TENANT, vector=vector, top_k=5, sparse=sparse))
                samples[mode].append(time.perf_counter() - started)
    finally:
        await store.close()
    return samples


async def through_gateways(data_dir: Path, queries: list[str], modes: tuple[str, ...]) -> dict[str, list[float]]:
    """One platform per mode, all running at once on copies of the data, queried in turn: each
    query goes to every mode back to back, so machine noise falls on all of them alike."""
    platforms = {}
    for mode in modes:
        copy = data_dir.with_name(f"{data_dir.name}-{mode}")
        shutil.copytree(data_dir, copy)
        env = {"RAG_RATE_LIMIT_RPS": "100000", "RAG_RATE_LIMIT_BURST": "100000", "RAG_RETRIEVAL_MODE": mode}
        platforms[mode] = PlatformProcesses(copy, extra_env=env)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        clients = {}
        for mode, processes in platforms.items():
            processes.start_all()
            clients[mode] = GatewayClient(processes.gateway, processes.create_api_key(TENANT))
            await clients[mode].__aenter__()
        for i in range(10):
            for client in clients.values():
                await client.search(f"warm up {i}", top_k=5)
        for query in queries:
            for mode, client in clients.items():
                started = time.perf_counter()
                await client.search(query, top_k=5)
                samples[mode].append(time.perf_counter() - started)
        for client in clients.values():
            await client.__aexit__(None, None, None)
    finally:
        for processes in platforms.values():
            processes.stop_all()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    queries = [zipf_text(rng, QUERY_WORDS) for _ in range(args.queries)]
    print(f"{'chunks':>8} {'path':>16} {'p50 ms':>9} {'p99 ms':>9}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / "data"
            started = time.perf_counter()
            await populate(data_dir, size, rng)
            print(f"# populated {size} chunks in {time.perf_counter() - started:.1f} s")
            stores = {mode: percentiles(s) for mode, s in (await direct(data_dir, queries, rng)).items()}
            for mode, (p50, p99) in stores.items():
                print(f"{size:>8} {'store ' + mode:>16} {p50:9.2f} {p99:9.2f}")
            gateway = await through_gateways(data_dir, queries, ("dense", "hybrid"))
            (d50, d99), (h50, h99) = percentiles(gateway["dense"]), percentiles(gateway["hybrid"])
            print(f"{size:>8} {'gateway dense':>16} {d50:9.2f} {d99:9.2f}")
            print(f"{size:>8} {'gateway hybrid':>16} {h50:9.2f} {h99:9.2f}   (hybrid adds {h50 - d50:+.2f} ms at p50)")


if __name__ == "__main__":
    asyncio.run(main())
