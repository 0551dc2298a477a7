"""Search latency: the gateway's `Search` (auth, gateway -> retrieval hop, query embedding,
tenant-filtered vector search) against a direct in-process vector-store call, at 10k and 100k
chunks, in one run.

    python bench/search_latency.py [--sizes 10000 100000] [--queries 300]

Vectors are random unit vectors (what is measured is latency, not relevance); the gateway path
also embeds the query with the `hashing` embedder.
"""

from __future__ import annotations

import argparse
import asyncio
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
from tests.support.platform_processes import PlatformProcesses

TENANT = "bench"
DIMENSION = 384
WORDS = [
    "pump",
    "pressure",
    "ferry",
    "harbor",
    "drone",
    "battery",
    "station",
    "aurora",
    "cafe",
    "kestrel",
    "nordlys",
    "zephyr",
]


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


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
                    text=" ".join(WORDS[(start + i + k) % len(WORDS)] for k in range(30)),
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


async def direct(data_dir: Path, queries: int, rng: np.random.Generator) -> list[float]:
    settings = load_settings(RetrievalSettings, data_dir=data_dir, embedder="hashing")
    store = open_vector_store(settings)
    await store.open(DIMENSION)
    samples = []
    try:
        for vec in unit_vectors(rng, queries):
            started = time.perf_counter()
            await store.search(SearchQuery(tenant_id=TENANT, vector=vec.tolist(), top_k=5))
            samples.append(time.perf_counter() - started)
    finally:
        await store.close()
    return samples


async def through_gateway(data_dir: Path, queries: int) -> list[float]:
    processes = PlatformProcesses(
        data_dir, extra_env={"RAG_RATE_LIMIT_RPS": "100000", "RAG_RATE_LIMIT_BURST": "100000"}
    )
    samples = []
    try:
        processes.start_all()
        key = processes.create_api_key(TENANT)
        async with GatewayClient(processes.gateway, key) as client:
            for i in range(10):
                await client.search(f"warm up {i}", top_k=5)
            for i in range(queries):
                query = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
                started = time.perf_counter()
                await client.search(query, top_k=5)
                samples.append(time.perf_counter() - started)
    finally:
        processes.stop_all()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    print(f"{'chunks':>8} {'path':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            started = time.perf_counter()
            await populate(data_dir, size, rng)
            print(f"# populated {size} chunks in {time.perf_counter() - started:.1f} s")
            d50, d99 = percentiles(await direct(data_dir, args.queries, rng))
            g50, g99 = percentiles(await through_gateway(data_dir, args.queries))
            print(f"{size:>8} {'direct':>10} {d50:9.2f} {d99:9.2f}")
            print(f"{size:>8} {'gateway':>10} {g50:9.2f} {g99:9.2f}   (p50 x{g50 / d50:.1f}, +{g50 - d50:.2f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
