"""Pick the vector store RAG_VECTOR_URL names: empty → the embedded engine in
RAG_DATA_DIR/vectors/<collection>; a URL → the Qdrant server adapter (imported only then)."""

from __future__ import annotations

from pathlib import Path

from ragplatform.backends.vectors.base import VectorStore
from ragplatform.core.settings import VectorSettings


def embedded_vector_dir(settings: VectorSettings) -> Path:
    """Where the embedded store keeps its files."""
    return settings.data_dir / "vectors" / settings.vector_collection


def open_vector_store(settings: VectorSettings) -> VectorStore:
    """The configured vector store, not yet opened: call `await store.open(dimension)`."""
    if not settings.vector_url:
        from ragplatform.backends.vectors.edge_index import EdgeIndexSettings
        from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore

        index = EdgeIndexSettings(
            threshold=settings.vector_index_threshold,
            m=settings.vector_hnsw_m,
            ef_construct=settings.vector_hnsw_ef_construct,
            search_ef=settings.vector_hnsw_ef,
            build_threads=settings.vector_index_build_threads,
            settle_seconds=settings.vector_index_settle_seconds,
            search_threads=settings.vector_search_threads,
        )
        return EdgeVectorStore(embedded_vector_dir(settings), index)
    from ragplatform.backends.vectors.qdrant_server import QdrantServerStore

    return QdrantServerStore(settings)
