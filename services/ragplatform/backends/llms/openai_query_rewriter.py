"""Follow-up questions rewritten by an OpenAI-compatible chat model, with the lexical rewrite as
the fallback.

One short, non-streamed completion (`RAG_QUERY_REWRITE_MAX_TOKENS`, temperature 0) under its own
timeout (`RAG_QUERY_REWRITE_TIMEOUT_SECONDS`), no retries: a rewrite that is slow or fails costs
the ask a little precision (the lexical rewrite is used), never the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import structlog
from openai.types.chat import ChatCompletionMessageParam

from ragplatform.backends.llms.query_rewriter import RewrittenQuery, has_earlier_question, rewrite_lexically
from ragplatform.backends.openai_client import make_openai_client
from ragplatform.core.settings import GenerationSettings
from ragplatform.domain.models import Turn
from ragplatform.domain.query_rewrite import build_rewrite_messages, clean_rewritten_query

log = structlog.get_logger("ragplatform.generation.query_rewrite")


class OpenAIQueryRewriter:
    """`QueryRewriter` over the configured chat endpoint and model (RAG_LLM_URL, RAG_LLM_MODEL).
    Callers may rely on: `rewriter == "llm"` only when the model's reply was a usable query; any
    error, timeout or unusable reply gives the lexical rewrite instead (logged as a warning)."""

    def __init__(self, settings: GenerationSettings) -> None:
        self._settings = settings
        self._client = make_openai_client(
            settings.llm_url, settings.llm_api_key, settings.query_rewrite_timeout_seconds
        )

    async def rewrite(self, question: str, history: Sequence[Turn]) -> RewrittenQuery:
        if not has_earlier_question(history):
            return RewrittenQuery(" ".join(question.split()), "")
        try:
            async with asyncio.timeout(self._settings.query_rewrite_timeout_seconds):
                reply = await self._client.chat.completions.create(
                    model=self._settings.llm_model,
                    messages=cast(list[ChatCompletionMessageParam], build_rewrite_messages(question, history)),
                    max_tokens=self._settings.query_rewrite_max_tokens,
                    temperature=0,
                )
        except Exception as exc:  # any failure: the lexical rewrite still beats none
            log.warning("query_rewrite.llm_failed", error=f"{type(exc).__name__}: {exc}", fallback="lexical")
            return rewrite_lexically(question, history)
        text = reply.choices[0].message.content if reply.choices else None
        query = clean_rewritten_query(text or "", question)
        if not query:
            log.warning("query_rewrite.llm_unusable", reply=(text or "")[:200], fallback="lexical")
            return rewrite_lexically(question, history)
        return RewrittenQuery(query, "llm")

    async def close(self) -> None:
        await self._client.close()
