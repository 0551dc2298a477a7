"""A remote cross-encoder behind the `/rerank` HTTP API that Hugging Face Text Embeddings
Inference and Infinity serve: `POST {url}/rerank` with `{"query": ..., "texts": [...]}` answers
`[{"index": i, "score": s}, ...]` (Infinity's OpenAI-style `{"results": [{"index", "relevance_score"}]}`
is read too). RAG_RERANK_URL is the server's base URL; RAG_RERANK_MODEL is sent as `model` when
set (Infinity serves several).

Callers may rely on: one HTTP request per search; passages come back best first with the
server's scores; passages the server leaves out keep their order after the scored ones; an
unreachable server, a timeout or an error status raises `Unavailable` naming RAG_RERANK_URL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
from pydantic import SecretStr

from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import ScoredPassage


class RemoteReranker:
    def __init__(self, url: str, *, model: str = "", api_key: SecretStr | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._url = url.rstrip("/")
        self._model = model
        self._client = httpx.AsyncClient(base_url=self._url, headers=headers, timeout=timeout)

    @property
    def name(self) -> str:
        return f"remote:{self._url}"

    async def rerank(self, query: str, passages: list[ScoredPassage]) -> list[ScoredPassage]:
        if not passages:
            return []
        body: dict[str, Any] = {"query": query, "texts": [p.text for p in passages]}
        if self._model:
            body["model"] = self._model
        try:
            response = await self._client.post("/rerank", json=body)
            response.raise_for_status()
            scores = _scores(response.json(), len(passages))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise Unavailable(
                f"the reranker at {self._url} failed ({exc.__class__.__name__}: {exc}); check RAG_RERANK_URL "
                "and that the server runs, or set RAG_RERANK=none"
            ) from exc
        return rank_by_scores(passages, scores)

    async def close(self) -> None:
        await self._client.aclose()


def _scores(answer: Any, count: int) -> dict[int, float]:
    """index -> score from a TEI list or an Infinity `{"results": [...]}` answer; indexes out of
    range are ignored."""
    items = answer["results"] if isinstance(answer, dict) else answer
    scores: dict[int, float] = {}
    for item in items:
        index = int(item["index"])
        if 0 <= index < count:
            scores[index] = float(item["score"] if "score" in item else item["relevance_score"])
    return scores


def rank_by_scores(passages: list[ScoredPassage], scores: dict[int, float]) -> list[ScoredPassage]:
    """Scored passages best first (ties keep their first-stage order), then the unscored ones in
    their first-stage order, each carrying its new score (unscored keep theirs)."""
    scored = sorted(scores, key=lambda i: (-scores[i], i))
    rest = [i for i in range(len(passages)) if i not in scores]
    return [replace(passages[i], score=scores[i]) for i in scored] + [passages[i] for i in rest]
