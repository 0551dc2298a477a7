"""Reranking by the configured OpenAI-compatible chat model: the candidates are numbered in one
prompt and the model answers with their numbers, best first. One chat request per search (a few
hundred milliseconds to seconds: worth it only where the benchmark says so).

Callers may rely on: a model answer that names no valid number leaves the first-stage order;
numbers it names come first in its order, the rest keep theirs; scores become 1/rank; the
endpoint failing raises `Unavailable`.
"""

from __future__ import annotations

import re
from dataclasses import replace

import openai
from pydantic import SecretStr

from ragplatform.backends.openai_client import make_openai_client
from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import ScoredPassage

SYSTEM_PROMPT = (
    "You rank passages by how well they answer a question. Reply with the passage numbers in "
    "brackets, best first, for example: [3] [1] [2]. Reply with the numbers only."
)
_NUMBER = re.compile(r"\[(\d+)\]")
_PASSAGE_CHARS = 1200


def ranking_prompt(query: str, passages: list[ScoredPassage]) -> str:
    """The user message: numbered passages as `[n] filename: text` (one line each), then the question."""
    lines = [f"[{n}] {p.filename}: {' '.join(p.text.split())[:_PASSAGE_CHARS]}" for n, p in enumerate(passages, 1)]
    return "\n\n".join(lines) + f"\n\nQuestion: {query}"


def parse_ranking(answer: str, count: int) -> list[int]:
    """Zero-based passage indexes in the order the answer names them (valid, first mention only)."""
    seen: dict[int, None] = {}
    for match in _NUMBER.finditer(answer):
        index = int(match.group(1)) - 1
        if 0 <= index < count:
            seen.setdefault(index, None)
    return list(seen)


def apply_ranking(passages: list[ScoredPassage], order: list[int]) -> list[ScoredPassage]:
    """Named passages first in the given order, the rest after in their order; score = 1/rank."""
    ranked = order + [i for i in range(len(passages)) if i not in set(order)]
    return [replace(passages[i], score=1.0 / rank) for rank, i in enumerate(ranked, 1)]


class LlmReranker:
    def __init__(self, url: str, model: str, api_key: SecretStr | None, timeout: float) -> None:
        self._client = make_openai_client(url, api_key, timeout)
        self._model = model

    @property
    def name(self) -> str:
        return f"llm:{self._model}"

    async def rerank(self, query: str, passages: list[ScoredPassage]) -> list[ScoredPassage]:
        if len(passages) < 2:
            return passages
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": ranking_prompt(query, passages)},
                ],
                temperature=0,
                max_tokens=8 * len(passages),
            )
        except openai.OpenAIError as exc:
            raise Unavailable(
                f"the LLM reranker ({self._model}) failed ({exc.__class__.__name__}: {exc}); check "
                "RAG_RERANK_URL / RAG_RERANK_MODEL, or set RAG_RERANK=none"
            ) from exc
        answer = completion.choices[0].message.content or "" if completion.choices else ""
        return apply_ranking(passages, parse_ranking(answer, len(passages)))

    async def close(self) -> None:
        await self._client.close()
