"""Prometheus metrics per method: calls by status code, latency, calls in flight."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ragplatform.core.interceptors.base import ScopedInterceptor
from ragplatform.core.metrics import GRPC_HANDLED, GRPC_IN_FLIGHT, GRPC_LATENCY


class MetricsInterceptor(ScopedInterceptor):
    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        GRPC_IN_FLIGHT.labels(method).inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            code = context.code()
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            GRPC_IN_FLIGHT.labels(method).dec()
            GRPC_HANDLED.labels(method, name).inc()
            GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
