"""The HNSW index settings of the embedded store and what they mean to the engine.

Small collections are searched exactly (a scan of a few thousand vectors takes a few ms and is
always fresh). Once `threshold` chunks have no index, a background build gives them an HNSW
graph (`edge_indexer.py`); chunks written after it stay in an unindexed segment that every search
scans exactly, so new chunks are found at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import qdrant_edge as qe

_FLOAT_BYTES = 4


@dataclass(frozen=True)
class EdgeIndexSettings:
    """See `VectorSettings` (RAG_VECTOR_INDEX_*, RAG_VECTOR_HNSW_*) for what each one means."""

    threshold: int = 20_000
    m: int = 16
    ef_construct: int = 100
    search_ef: int = 128
    build_threads: int = 1
    settle_seconds: float = 5.0
    search_threads: int = 1

    @property
    def enabled(self) -> bool:
        return self.threshold > 0


def threshold_kb(chunks: int, dimension: int) -> int:
    """The engine counts thresholds in KB of dense vectors; ours are in chunks."""
    return max(1, -(-chunks * dimension * _FLOAT_BYTES // 1024))


def engine_index_config(settings: EdgeIndexSettings, dimension: int) -> dict[str, Any]:
    """The `EdgeConfig` arguments for the index: an HNSW graph for segments of at least
    `threshold` chunks, and exact search (through the payload index) whenever a filter leaves
    fewer than `threshold` chunks in a segment — e.g. a small tenant in a large store."""
    if not settings.enabled:
        return {}
    kb = threshold_kb(settings.threshold, dimension)
    return {
        "hnsw_config": qe.HnswIndexConfig(
            m=settings.m,
            ef_construct=settings.ef_construct,
            full_scan_threshold=kb,
            max_indexing_threads=settings.build_threads,
        ),
        "optimizers": qe.EdgeOptimizersConfig(indexing_threshold=kb),
    }


def dense_search_params(settings: EdgeIndexSettings) -> Any:
    """Search parameters of a dense query: the HNSW candidate list size (ignored by unindexed
    segments, which are scanned exactly)."""
    return qe.SearchParams(hnsw_ef=settings.search_ef) if settings.enabled else None


def unindexed_chunks(points: int, indexed_vectors: int) -> int:
    """Chunks without a dense index, from the engine's counters: every chunk has a sparse vector
    (always indexed) beside its dense one, so the engine reports `points` + dense-indexed."""
    return max(0, points - max(0, indexed_vectors - points))
