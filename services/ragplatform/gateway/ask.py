"""The Ask flow: retrieval, then a streamed generation, then both turns stored (a new
conversation is created with its first exchange). A follow-up in a conversation first reads its
history, and the generation service rewrites it into a standalone query, which is what is
searched. Deadlines travel with every hop (see core/clients.py).

The gateway reads a follow-up's history and stores the exchange itself, through the store it
holds for API keys, with the conversation service's rules (`backends/store/conversation_writes.py`)
and the same statements: a gRPC hop to the conversation service cost more CPU than the SQL it ran
(see docs/performance.md). The conversation service still serves the conversation API
(GetConversation, ListConversations, and AppendTurns / GetHistory for other callers)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from ragplatform.backends.cache.base import AnswerCache, TokenBudget
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.conversation_writes import append_to_conversation
from ragplatform.core.clients import note_congestion, upstream_errors
from ragplatform.core.context import request_id_var
from ragplatform.core.convert import citation_from_proto, turn_to_proto
from ragplatform.core.interceptors.admission import answer_done
from ragplatform.core.metrics import ANSWER_CACHE
from ragplatform.core.tracing_state import store_span
from ragplatform.domain.errors import InvalidArgument, ResourceExhausted, Unavailable
from ragplatform.domain.models import Role, Turn
from ragplatform.gateway.answer_cache import answer_cache_key
from ragplatform.v1 import (
    common_pb2,
    gateway_pb2,
    generation_pb2,
    generation_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)

log = structlog.get_logger("ragplatform.gateway.ask")

# The trace spans of a follow-up's history read and of the exchange's write (see `_history`
# and `_store_turns`).
HISTORY_SPAN = "read conversation history"
STORE_TURNS_SPAN = "store conversation turns"


@dataclass(frozen=True)
class AskLimits:
    default_top_k: int
    max_top_k: int
    max_question_chars: int
    history_turns: int
    cache_ttl_seconds: int
    daily_token_budget: int = 0


def validate_ask(request: gateway_pb2.AskRequest, limits: AskLimits) -> None:
    question = request.question.strip()
    if not question:
        raise InvalidArgument("question is empty; ask something about your documents")
    if len(request.question) > limits.max_question_chars:
        raise InvalidArgument(
            f"question is {len(request.question)} characters; the limit is {limits.max_question_chars}"
        )
    if request.top_k < 0 or request.top_k > limits.max_top_k:
        raise InvalidArgument(f"top_k must be between 1 and {limits.max_top_k} (0 means {limits.default_top_k})")
    if not 0.0 <= request.score_threshold <= 1.0:
        raise InvalidArgument("score_threshold must be between 0 and 1")
    if request.max_tokens < 0:
        raise InvalidArgument("max_tokens must be 0 (default) or positive")


class AskFlow:
    def __init__(
        self,
        retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
        generation: generation_pb2_grpc.GenerationServiceStub,
        store: Store,
        cache: AnswerCache,
        budget: TokenBudget,
        limits: AskLimits,
    ) -> None:
        self._retrieval = retrieval
        self._generation = generation
        self._store = store
        self._cache = cache
        self._budget = budget
        self._limits = limits

    async def ask(self, tenant_id: str, request: gateway_pb2.AskRequest) -> AsyncIterator[gateway_pb2.AskResponse]:
        validate_ask(request, self._limits)
        await self._check_budget(tenant_id)
        top_k = request.top_k or self._limits.default_top_k
        # A follow-up's answer depends on its conversation (what is searched and what the model
        # reads): it is neither served from the cache nor stored in it.
        cache_key = "" if request.conversation_id else await self._cache_key(tenant_id, request, top_k)
        cached = await self._cache.get(cache_key) if cache_key else None
        if cached is not None:
            ANSWER_CACHE.labels("hit").inc()
            async for message in self._replay(tenant_id, request.question, cached):
                yield message
            return
        if cache_key:
            ANSWER_CACHE.labels("miss").inc()
        history: list[common_pb2.Turn] = []
        search_query, rewriter, rewrite_seconds = request.question, "", 0.0
        if request.conversation_id:
            # A follow-up means what its history says: fetch it, then search its rewrite. A new
            # conversation is created with its first exchange when that is stored.
            history = await self._history(tenant_id, request)
            search_query, rewriter, rewrite_seconds = await self._search_query(tenant_id, request.question, history)
        with upstream_errors("retrieval", admission_signal=True):
            searching = self._retrieval.Search(
                retrieval_pb2.SearchRequest(
                    tenant_id=tenant_id,
                    query=search_query,
                    top_k=top_k,
                    filters=request.filters,
                    score_threshold=request.score_threshold,
                )
            )
            search = await searching
            await note_congestion(searching)
        sources = gateway_pb2.AskSources(passages=search.passages)
        yield gateway_pb2.AskResponse(sources=sources)
        answer: list[str] = []
        done: generation_pb2.GenerationDone | None = None
        with upstream_errors("generation", admission_signal=True):
            stream = self._generation.Generate(
                generation_pb2.GenerateRequest(
                    tenant_id=tenant_id,
                    question=request.question,
                    passages=search.passages,
                    history=history,
                    model=request.model,
                    max_tokens=request.max_tokens,
                )
            )
            async for event in stream:
                if event.WhichOneof("event") == "delta":
                    answer.append(event.delta)
                    yield gateway_pb2.AskResponse(delta=event.delta)
                else:
                    done = event.done
            await note_congestion(stream)
        if done is None:
            raise Unavailable("the generation service ended the answer early; retry")
        text = "".join(answer)
        if self._limits.daily_token_budget:
            await self._budget.spend(tenant_id, done.usage.total_tokens)
        conversation_id = await self._store_turns(
            tenant_id, request.conversation_id, request.question, text, list(done.citations)
        )
        ask_done = gateway_pb2.AskDone(
            citations=done.citations,
            usage=done.usage,
            conversation_id=conversation_id,
            model=done.model,
            extractive=done.extractive,
            cached=False,
            request_id=request_id_var.get(),
            search_query=search_query,
            query_rewriter=rewriter,
        )
        if cache_key:
            await self._cache.set(cache_key, _encode(sources, text, ask_done), self._limits.cache_ttl_seconds)
        if done.model_seconds or done.extractive:  # (a generation service too old to time its model: no sample)
            # Admission control judges the platform's share of the latency: less both model waits.
            answer_done(done.model_seconds + rewrite_seconds)
        yield gateway_pb2.AskResponse(done=ask_done)

    async def _search_query(
        self, tenant_id: str, question: str, history: list[common_pb2.Turn]
    ) -> tuple[str, str, float]:
        """The query to search with, who rewrote it ("" when it is the question) and the seconds
        the rewrite's model took: a question with earlier questions in its conversation is
        rewritten by the generation service."""
        if not any(t.role == common_pb2.ROLE_USER for t in history):
            return question, "", 0.0
        with upstream_errors("generation", admission_signal=True):
            rewritten = await self._generation.RewriteQuery(
                generation_pb2.RewriteQueryRequest(tenant_id=tenant_id, question=question, history=history)
            )
        if rewritten.rewriter:
            log.info(
                "ask.query_rewritten", question=question, search_query=rewritten.query, rewriter=rewritten.rewriter
            )
        return rewritten.query or question, rewritten.rewriter, rewritten.model_seconds

    async def _check_budget(self, tenant_id: str) -> None:
        limit = self._limits.daily_token_budget
        if not limit:
            return
        wait = await self._budget.check(tenant_id, limit)
        if wait > 0:
            raise ResourceExhausted(
                f"tenant {tenant_id!r} has spent its daily budget of {limit} LLM tokens; it resets at 00:00 UTC "
                f"(in {wait / 3600:.1f} h). Ask the platform team to raise RAG_TENANT_DAILY_TOKEN_BUDGET",
                retry_after_seconds=wait,
            )

    async def _cache_key(self, tenant_id: str, request: gateway_pb2.AskRequest, top_k: int) -> str:
        if self._limits.cache_ttl_seconds <= 0:
            return ""
        version = await self._store.corpus_version(tenant_id)
        return answer_cache_key(
            tenant_id,
            request.question,
            version,
            request.model,
            top_k,
            dict(request.filters),
            round(request.score_threshold, 4),
            request.max_tokens,
        )

    async def _history(self, tenant_id: str, request: gateway_pb2.AskRequest) -> list[common_pb2.Turn]:
        """The latest turns of the conversation the ask follows up (NOT_FOUND when the tenant has
        none by that id), read through the gateway's own store as the conversation service's
        GetHistory would read them."""
        with store_span(HISTORY_SPAN):
            turns = await self._store.get_turns(tenant_id, request.conversation_id, self._limits.history_turns)
        return [turn_to_proto(t) for t in turns]

    async def _store_turns(
        self,
        tenant_id: str,
        conversation_id: str,
        question: str,
        answer: str,
        citations: list[common_pb2.Citation],
    ) -> str:
        """Store the exchange (starting a conversation titled by the question when
        `conversation_id` is empty); return the conversation's id. Written through the gateway's
        own store, as the conversation service's AppendTurns would (same rules, same statement)."""
        turns = [
            Turn(role=Role.USER, content=question),
            Turn(role=Role.ASSISTANT, content=answer, citations=tuple(citation_from_proto(c) for c in citations)),
        ]
        with store_span(STORE_TURNS_SPAN):
            stored = await append_to_conversation(self._store, tenant_id, conversation_id, turns, title=question)
        return stored.conversation_id

    async def _replay(self, tenant_id: str, question: str, cached: bytes) -> AsyncIterator[gateway_pb2.AskResponse]:
        """A cached answer (only ever for a new conversation's first question)."""
        sources, text, done = _decode(cached)
        yield gateway_pb2.AskResponse(sources=sources)
        yield gateway_pb2.AskResponse(delta=text)
        done.conversation_id = await self._store_turns(tenant_id, "", question, text, list(done.citations))
        done.cached = True
        done.request_id = request_id_var.get()
        yield gateway_pb2.AskResponse(done=done)


def _encode(sources: gateway_pb2.AskSources, text: str, done: gateway_pb2.AskDone) -> bytes:
    return json.dumps(
        {
            "sources": base64.b64encode(sources.SerializeToString()).decode(),
            "answer": text,
            "done": base64.b64encode(done.SerializeToString()).decode(),
        }
    ).encode()


def _decode(data: bytes) -> tuple[gateway_pb2.AskSources, str, gateway_pb2.AskDone]:
    raw = json.loads(data)
    sources = gateway_pb2.AskSources.FromString(base64.b64decode(raw["sources"]))
    done = gateway_pb2.AskDone.FromString(base64.b64decode(raw["done"]))
    return sources, str(raw["answer"]), done
