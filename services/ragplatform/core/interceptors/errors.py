"""Error mapping: domain errors -> their status; anything else -> INTERNAL with a generic message
(the traceback is logged, never sent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import structlog

from ragplatform.core.context import request_id_var
from ragplatform.core.error_mapping import status_for, trailing_metadata_for
from ragplatform.core.interceptors.base import ScopedInterceptor
from ragplatform.core.redaction import redact_text
from ragplatform.domain.errors import DeadlineExceeded, RagError

log = structlog.get_logger("ragplatform.errors")


class ErrorMappingInterceptor(ScopedInterceptor):
    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        try:
            yield
        except RagError as exc:
            code = status_for(exc)
            extra = trailing_metadata_for(exc)
            if extra:
                context.set_trailing_metadata((*(context.trailing_metadata() or ()), *extra))
            # Safety net: a message that quotes a URL never carries its credentials.
            await context.abort(code, redact_text(exc.message))
        except TimeoutError:
            exc2 = DeadlineExceeded("the call did not finish within its deadline; retry with a longer deadline")
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc2.message)
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            raise
        except Exception:
            request_id = request_id_var.get()
            log.exception("unhandled error", method=method)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error (request id {request_id}); the details are in the server log",
            )
