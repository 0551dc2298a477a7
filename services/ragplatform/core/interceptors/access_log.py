"""Access log: binds request id and tenant for every log line of the call, logs its outcome.

The tenant header is only read where it can be trusted: on internal services, which only the
gateway and workers call (with the internal token). The public gateway logs the tenant its API-key
check authenticated, whatever headers the client sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import structlog

from ragplatform.core.context import (
    REQUEST_ID_HEADER,
    TENANT_HEADER,
    CallRecord,
    accepted_request_id,
    call_record_var,
    request_id_var,
    scoped,
    tenant_var,
)
from ragplatform.core.interceptors.base import ScopedInterceptor, metadata_value

log = structlog.get_logger("ragplatform.access")


class AccessLogInterceptor(ScopedInterceptor):
    def __init__(self, trust_tenant_header: bool) -> None:
        self._trust_tenant_header = trust_tenant_header

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        request_id = accepted_request_id(metadata_value(context, REQUEST_ID_HEADER))
        record = CallRecord(metadata_value(context, TENANT_HEADER) if self._trust_tenant_header else "")
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        started = time.perf_counter()
        with scoped(
            {request_id_var: request_id, tenant_var: record.tenant, call_record_var: record},
            {"request_id": request_id, "method": method},
        ):
            outcome = "OK"
            try:
                yield
            except BaseException as exc:
                code = context.code()
                outcome = code.name if isinstance(code, grpc.StatusCode) else type(exc).__name__
                raise
            finally:
                code = context.code()
                if isinstance(code, grpc.StatusCode) and outcome == "OK":
                    outcome = code.name
                log.info(
                    "rpc",
                    code=outcome,
                    tenant=record.tenant,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
