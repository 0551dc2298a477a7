"""What the hybrid fusion method costs a search: the engine's own RRF (one store call, two
prefetches fused inside) against `relative` score fusion (the retrieval service asks the store for
the dense and the sparse lists apart and fuses them in Python, `domain/fusion.py`), side by side in
one run, every query sent through both in turn, on the exact (unindexed) stores of
bench/search_latency.py (generated once and cached under bench/results/search-latency/).

    python bench/fusion_cost.py [--sizes 10000 100000] [--queries 300] [--pairs]

`--pairs` compares instead what the query's adjacent-word pairs cost (RAG_SPARSE_PAIR_WEIGHT 0
against 1, relative fusion both): the stored sparse vectors hold the pairs either way.

Prints, per size and method, wall-clock p50 / p99 and CPU time per search (this process; the
embedded engine runs in it, so that is all the work), through `RetrievalService.search` with
the gateway's default top_k (5); the query's dense vector is given (a fixed embedder), so the
figures are the store and fusion only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_latency import DIMENSION, TENANT, base_embeddings, cached_exact_store, mixtures, store_dir, zipf_text
from ragplatform.backends.vectors.edge_index import EdgeIndexSettings
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.domain.fusion import DEFAULT_SPARSE_WEIGHT
from ragplatform.domain.models import HybridFusion
from ragplatform.retrieval.service import RetrievalPolicy, RetrievalService


class FixedEmbedder:
    """Returns the vector the harness set for the next query (no model in the timing)."""

    name = "fixed"
    dimension = DIMENSION
    vector: list[float] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vector for _ in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self.vector

    async def close(self) -> None:
        return None


def policies(pairs: bool) -> dict[str, RetrievalPolicy]:
    """The search policies compared, by label: the two fusion methods, or (`pairs`) relative
    fusion with and without the query's term pairs."""
    if pairs:
        relative = HybridFusion(method="relative", sparse_weight=DEFAULT_SPARSE_WEIGHT["relative"])
        return {f"pairs {w:g}": RetrievalPolicy(fusion=relative, sparse_pair_weight=w) for w in (0.0, 1.0)}
    return {
        method: RetrievalPolicy(fusion=HybridFusion(method=method, sparse_weight=DEFAULT_SPARSE_WEIGHT[method]))
        for method in ("rrf", "relative")
    }


async def measure(size: int, queries: int, pairs: bool) -> None:
    base, source = base_embeddings()
    data = await cached_exact_store(size, base, source)
    store = EdgeVectorStore(store_dir(data), EdgeIndexSettings(threshold=0))
    await store.open(DIMENSION)
    rng = np.random.default_rng(7)
    texts = [zipf_text(rng, 6) for _ in range(queries)]
    vectors = mixtures(rng, base, queries)
    embedder = FixedEmbedder()
    services = {
        label: RetrievalService(embedder, store, 50, policy)  # type: ignore[arg-type]
        for label, policy in policies(pairs).items()
    }
    wall: dict[str, list[float]] = {m: [] for m in services}
    cpu: dict[str, list[float]] = {m: [] for m in services}
    try:
        for text, vector in zip(texts, vectors, strict=True):
            embedder.vector = vector.tolist()
            for method, service in services.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                await service.search(TENANT, text, 5, {}, 0.0)
                wall[method].append(time.perf_counter() - started)
                cpu[method].append(time.process_time() - started_cpu)
    finally:
        await store.close()
    for method in services:
        samples = sorted(wall[method])
        p50, p99 = samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(
            f"{size:>7} chunks  {method:8}  p50 {1000 * p50:6.2f} ms  p99 {1000 * p99:6.2f} ms  "
            f"CPU {1000 * sum(cpu[method]) / len(cpu[method]):6.2f} ms/search"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--pairs", action="store_true", help="compare the query's term pairs off and on")
    args = parser.parse_args()
    for size in args.sizes:
        await measure(size, args.queries, args.pairs)


if __name__ == "__main__":
    asyncio.run(main())
