"""Rerankers: reorder a search's candidate passages by a finer relevance judgment than the
first-stage (dense + sparse) scores. Adapters: `remote.py` (the de-facto `/rerank` HTTP API of
Hugging Face TEI and Infinity, serving a cross-encoder) and `llm.py` (the configured
OpenAI-compatible chat endpoint ranks them). Off by default: no reranking model can run inside
this platform's embedded mode (none ships its weights in a Python package), and the benchmark
(bench/retrieval_quality.py --rerank-url ...) is how an operator decides whether one pays.
"""

from __future__ import annotations

from typing import Protocol

from ragplatform.domain.models import ScoredPassage


class Reranker(Protocol):
    @property
    def name(self) -> str: ...

    async def rerank(self, query: str, passages: list[ScoredPassage]) -> list[ScoredPassage]:
        """The same passages, best first, each with the reranker's score (higher is better).
        Raises `Unavailable` when the reranker cannot be reached or answers with an error."""

    async def close(self) -> None: ...
