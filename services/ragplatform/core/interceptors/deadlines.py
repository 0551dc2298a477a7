"""Deadlines: every call gets one (the client's, capped by the server's maximum), stored in a
ContextVar so outgoing calls forward what is left, and enforced with asyncio.timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ragplatform.core.context import deadline_var, scoped
from ragplatform.core.interceptors.base import ScopedInterceptor


class DeadlineInterceptor(ScopedInterceptor):
    def __init__(self, max_seconds: float | None) -> None:
        self._max = max_seconds

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        remaining = context.time_remaining()
        if remaining is None or (self._max is not None and remaining > self._max):
            remaining = self._max
        if remaining is None:
            yield
            return
        with scoped({deadline_var: time.monotonic() + remaining}):
            async with asyncio.timeout(remaining):
                yield
