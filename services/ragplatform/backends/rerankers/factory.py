"""Pick the reranker RAG_RERANK names (`none`, `remote`, `llm`); adapters load only when chosen."""

from __future__ import annotations

from ragplatform.backends.rerankers.base import Reranker
from ragplatform.core.settings import RerankSettings


def make_reranker(settings: RerankSettings) -> Reranker | None:
    """The configured reranker, or None when reranking is off."""
    if settings.rerank == "remote":
        from ragplatform.backends.rerankers.remote import RemoteReranker

        return RemoteReranker(
            settings.rerank_url,
            model=settings.rerank_model,
            api_key=settings.rerank_api_key,
            timeout=settings.rerank_timeout_seconds,
        )
    if settings.rerank == "llm":
        from ragplatform.backends.rerankers.llm import LlmReranker

        return LlmReranker(
            settings.rerank_url, settings.rerank_model, settings.rerank_api_key, settings.rerank_timeout_seconds
        )
    return None
