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
from ragplatform.core.interceptors.base import ScopedInterceptor, read_unread_requests
from ragplatform.core.redaction import hide_endpoints, redact_text
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
            await read_unread_requests()  # refused before its handler read the upload (e.g. auth)
            await context.abort(code, _for_the_caller(exc.message, method))
        except TimeoutError:
            exc2 = DeadlineExceeded("the call did not finish within its deadline; retry with a longer deadline")
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc2.message)
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            raise
        except Exception:
            request_id = request_id_var.get()
            log.exception("unhandled error", method=method)
            await read_unread_requests()
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error (request id {request_id}); the details are in the server log",
            )


def _for_the_caller(message: str, method: str) -> str:
    """Callers never see an internal endpoint's address (nor, so, its credentials); when one is
    hidden, the full message goes to the log, redacted, for the operator."""
    public = hide_endpoints(message)
    if public != message:
        log.warning("endpoint hidden from the caller", method=method, detail=redact_text(message))
    return public
