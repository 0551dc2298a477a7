"""Generation rules, independent of gRPC: validate and stream from the configured generator."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ragplatform.backends.llms.base import AnswerDone, AnswerEvent, AnswerGenerator, AnswerRequest
from ragplatform.core.metrics import TOKENS_USED
from ragplatform.domain.errors import InvalidArgument, Unavailable
from ragplatform.generation.coalesce import coalesce_deltas

MAX_QUESTION_CHARS = 8000
MAX_PASSAGES = 50


class GenerationService:
    def __init__(self, generator: AnswerGenerator, default_max_tokens: int) -> None:
        self._generator = generator
        self._default_max_tokens = default_max_tokens

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
        done = False
        async for event in coalesce_deltas(self._generator.generate(request)):
            if isinstance(event, AnswerDone):
                done = True
                TOKENS_USED.labels(request.tenant_id, "prompt").inc(event.usage.prompt_tokens)
                TOKENS_USED.labels(request.tenant_id, "completion").inc(event.usage.completion_tokens)
            yield event
        if not done:
            raise Unavailable(f"the {self._generator.name} generator ended without finishing the answer; retry")
