"""Admission control: a process takes at most `limit` calls at once and refuses the excess at
once, with RESOURCE_EXHAUSTED and a `retry-after-seconds` hint (the rate limiter's format), rather
than queueing it behind work it cannot finish in time.

A streamed call (an Ask) counts until its last message is sent. Health checks and reflection
are never refused: an overloaded process is busy, not dead. The outermost interceptor, so a
refusal costs as little as possible (no auth, no access-log line: the refused counter says it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ragplatform.core.error_mapping import trailing_metadata_for
from ragplatform.core.interceptors.base import ScopedInterceptor
from ragplatform.core.metrics import ADMISSION_IN_FLIGHT, ADMISSION_LIMIT, GRPC_REFUSED
from ragplatform.domain.errors import ResourceExhausted


class AdmissionInterceptor(ScopedInterceptor):
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

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        if self.in_flight >= self.limit:
            GRPC_REFUSED.labels(self.service, method).inc()
            refusal = self._refusal()
            context.set_trailing_metadata(trailing_metadata_for(refusal))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message)
        self.in_flight += 1
        self._gauge.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._gauge.dec()
