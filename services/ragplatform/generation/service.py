"""Generation rules, independent of gRPC: validate and stream from the configured generator;
rewrite follow-up questions with the configured query rewriter."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Sequence

from ragplatform.backends.llms.base import AnswerDone, AnswerEvent, AnswerGenerator, AnswerRequest
from ragplatform.backends.llms.query_rewriter import QueryRewriter, RewrittenQuery, UnchangedQuery
from ragplatform.core.metrics import LLM_FIRST_TOKEN_SECONDS, LLM_SECONDS, TOKENS_USED
from ragplatform.domain.errors import InvalidArgument, Unavailable
from ragplatform.domain.models import Turn
from ragplatform.generation.coalesce import coalesce_deltas

MAX_QUESTION_CHARS = 8000
MAX_PASSAGES = 50


class AnswerTiming:
    """Latency of one answer for the metrics: time to first text and to the end, labelled with
    the model that answered (known at the end; until then the requested one)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.model_done: str | None = None
        self._started = time.perf_counter()
        self._first: float | None = None

    def first_text(self) -> None:
        if self._first is None:
            self._first = time.perf_counter() - self._started

    def done(self, event: AnswerDone) -> AnswerDone:
        """The answer's end, with the model's time for it."""
        self.model_done = event.model or self.model
        return dataclasses.replace(event, model_seconds=time.perf_counter() - self._started)

    def finish(self) -> None:
        """Record the answer: `ok` once it finished, else `error` (failed, cancelled, cut short)."""
        model = self.model_done or self.model
        if self._first is not None:
            LLM_FIRST_TOKEN_SECONDS.labels(model).observe(self._first)
        outcome = "ok" if self.model_done is not None else "error"
        LLM_SECONDS.labels(model, outcome).observe(time.perf_counter() - self._started)


class GenerationService:
    def __init__(
        self,
        generator: AnswerGenerator,
        default_max_tokens: int,
        rewriter: QueryRewriter | None = None,
        delta_interval: float = 0.0,
    ) -> None:
        self._generator = generator
        self._default_max_tokens = default_max_tokens
        self._rewriter = rewriter or UnchangedQuery()
        # Least seconds between two answer messages after the first (see generation/coalesce.py).
        self._delta_interval = delta_interval

    async def rewrite_query(self, tenant_id: str, question: str, history: Sequence[Turn]) -> RewrittenQuery:
        """A standalone search query for a follow-up `question` (the question itself when it needs
        none)."""
        if not tenant_id:
            raise InvalidArgument("tenant_id is required")
        if not question.strip():
            raise InvalidArgument("question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidArgument(f"question is longer than {MAX_QUESTION_CHARS} characters; shorten it")
        started = time.perf_counter()
        rewritten = await self._rewriter.rewrite(question, history)
        # The wait is the model's (a lexical rewrite takes microseconds): admission control
        # leaves it out of the platform's share of the Ask, as it does the answer's model time.
        return dataclasses.replace(rewritten, model_seconds=time.perf_counter() - started)

    async def generate(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        if not request.tenant_id:
            raise InvalidArgument("tenant_id is required")
        if not request.question.strip():
            raise InvalidArgument("question is empty")
        if len(request.question) > MAX_QUESTION_CHARS:
            raise InvalidArgument(f"question is longer than {MAX_QUESTION_CHARS} characters; shorten it")
        if len(request.passages) > MAX_PASSAGES:
            raise InvalidArgument(f"at most {MAX_PASSAGES} passages may be sent")
        if request.max_tokens < 0:
            raise InvalidArgument("max_tokens must be 0 (default) or positive")
        if request.max_tokens == 0:
            request = AnswerRequest(
                tenant_id=request.tenant_id,
                question=request.question,
                passages=request.passages,
                history=request.history,
                model=request.model,
                max_tokens=self._default_max_tokens,
            )
        timing = AnswerTiming(request.model or self._generator.name)
        try:
            async for event in coalesce_deltas(self._generator.generate(request), interval=self._delta_interval):
                if isinstance(event, AnswerDone):
                    event = timing.done(event)
                    TOKENS_USED.labels(request.tenant_id, event.model, "prompt").inc(event.usage.prompt_tokens)
                    TOKENS_USED.labels(request.tenant_id, event.model, "completion").inc(event.usage.completion_tokens)
                else:
                    timing.first_text()
                yield event
        finally:
            timing.finish()
        if timing.model_done is None:
            raise Unavailable(f"the {self._generator.name} generator ended without finishing the answer; retry")
