"""Internal-token check: when RAG_INTERNAL_TOKEN is set, internal services accept only calls
that carry it (the gateway and workers send it)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ragplatform.core.context import INTERNAL_TOKEN_HEADER
from ragplatform.core.interceptors.base import ScopedInterceptor, metadata_value
from ragplatform.domain.errors import Unauthenticated


class InternalTokenInterceptor(ScopedInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        given = metadata_value(context, INTERNAL_TOKEN_HEADER).encode()
        if not hmac.compare_digest(given, self._token):
            raise Unauthenticated("this internal service needs the platform's internal token; call the gateway instead")
        yield
