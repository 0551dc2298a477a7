"""gRPC face of the generation service: proto <-> domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ragplatform.backends.llms.base import AnswerDelta, AnswerRequest
from ragplatform.core.convert import citation_to_proto, passage_from_proto, turn_from_proto, usage_to_proto
from ragplatform.generation.service import GenerationService
from ragplatform.v1 import generation_pb2, generation_pb2_grpc


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, service: GenerationService) -> None:
        self._service = service

    async def RewriteQuery(
        self, request: generation_pb2.RewriteQueryRequest, context: Any
    ) -> generation_pb2.RewriteQueryResponse:
        rewritten = await self._service.rewrite_query(
            request.tenant_id, request.question, [turn_from_proto(t) for t in request.history]
        )
        return generation_pb2.RewriteQueryResponse(
            query=rewritten.query, rewriter=rewritten.rewriter, model_seconds=rewritten.model_seconds
        )

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        answer_request = AnswerRequest(
            tenant_id=request.tenant_id,
            question=request.question,
            passages=[passage_from_proto(p) for p in request.passages],
            history=[turn_from_proto(t) for t in request.history],
            model=request.model,
            max_tokens=request.max_tokens,
        )
        async for event in self._service.generate(answer_request):
            if isinstance(event, AnswerDelta):
                yield generation_pb2.GenerateResponse(delta=event.text)
            else:
                yield generation_pb2.GenerateResponse(
                    done=generation_pb2.GenerationDone(
                        citations=[citation_to_proto(c) for c in event.citations],
                        usage=usage_to_proto(event.usage),
                        model=event.model,
                        finish_reason=event.finish_reason,
                        extractive=event.extractive,
                        model_seconds=event.model_seconds,
                    )
                )
