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
    def __init__(self) -> None:
        # Labelled children, looked up once per method (and code): `labels()` takes a lock and
        # builds a key on every call, which adds up at thousands of calls a second.
        self._children: dict[str, tuple[Any, Any]] = {}
        self._handled: dict[tuple[str, str], Any] = {}

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        children = self._children.get(method)
        if children is None:
            children = self._children[method] = (GRPC_IN_FLIGHT.labels(method), GRPC_LATENCY.labels(method))
        in_flight, latency = children
        in_flight.inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            code = context.code()
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            in_flight.dec()
            handled = self._handled.get((method, name))
            if handled is None:
                handled = self._handled[(method, name)] = GRPC_HANDLED.labels(method, name)
            handled.inc()
            latency.observe(time.perf_counter() - started)
