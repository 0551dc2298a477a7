"""Admission control: a process takes at most `limit` calls at once and refuses the excess at
once, with RESOURCE_EXHAUSTED and a `retry-after-seconds` hint (the rate limiter's format), rather
than queueing it behind work it cannot finish in time.

A streamed call (an Ask) counts until its last message is sent. Health checks and reflection
are never refused: an overloaded process is busy, not dead. The outermost interceptor, so a
refusal costs as little as possible (no auth, no access-log line: the refused counter says it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ragplatform.core.error_mapping import trailing_metadata_for
from ragplatform.core.interceptors.base import StreamBehaviour, UnaryBehaviour, is_infrastructure, rewrap_handler
from ragplatform.core.metrics import ADMISSION_IN_FLIGHT, ADMISSION_LIMIT, GRPC_REFUSED
from ragplatform.domain.errors import ResourceExhausted


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Bounds the calls this process has in flight (every method together)."""

    def __init__(self, service: str, limit: int, retry_after_seconds: float) -> None:
        self.service = service
        self.limit = limit
        self.in_flight = 0
        self._retry_after = retry_after_seconds
        self._gauge = ADMISSION_IN_FLIGHT.labels(service)
        ADMISSION_LIMIT.labels(service).set(limit)

    def _refusal(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"the {self.service} service is at capacity ({self.limit} calls in flight); "
            f"retry in {self._retry_after:g} s (with jitter), or add replicas",
            retry_after_seconds=self._retry_after,
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_infrastructure(method):
            return handler
        return self._wrap(handler, method)

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        admission = self

        async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
            GRPC_REFUSED.labels(admission.service, method).inc()
            refusal = admission._refusal()
            context.set_trailing_metadata(trailing_metadata_for(refusal))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message)

        def enter() -> bool:
            if admission.in_flight >= admission.limit:
                return False
            admission.in_flight += 1
            admission._gauge.inc()
            return True

        def leave() -> None:
            admission.in_flight -= 1
            admission._gauge.dec()

        def unary_response(behaviour: UnaryBehaviour) -> UnaryBehaviour:
            async def call(request: Any, context: Any) -> Any:
                if not enter():
                    await refuse(context)
                try:
                    return await behaviour(request, context)
                finally:
                    leave()

            return call

        def stream_response(behaviour: StreamBehaviour) -> StreamBehaviour:
            async def call(request: Any, context: Any) -> AsyncIterator[Any]:
                if not enter():
                    await refuse(context)
                try:
                    async for item in behaviour(request, context):
                        yield item
                finally:
                    leave()

            return call

        return rewrap_handler(handler, unary_response, stream_response)
