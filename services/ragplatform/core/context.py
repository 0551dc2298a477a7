"""Per-request context carried in ContextVars: request id, tenant, deadline.

Set by the server interceptors, read by logging, by outgoing clients (which forward the
request id and tenant, and shorten their own timeout to the caller's remaining deadline) and by
domain code that needs the tenant for logs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import structlog

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
tenant_var: ContextVar[str] = ContextVar("tenant", default="")
# Absolute time.monotonic() by which the current call must finish; None when unbounded.
deadline_var: ContextVar[float | None] = ContextVar("deadline", default=None)

REQUEST_ID_HEADER = "x-request-id"
TENANT_HEADER = "x-ragplatform-tenant"
INTERNAL_TOKEN_HEADER = "x-ragplatform-internal-token"


def new_request_id() -> str:
    return uuid.uuid4().hex


def remaining_seconds() -> float | None:
    """Seconds left before the current call's deadline, or None when there is none."""
    deadline = deadline_var.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


@contextmanager
def scoped(values: Mapping[ContextVar[Any], Any], log_fields: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Set ContextVars (and structlog's log fields) for a block, and restore them after.

    A server stream the client cancels is closed by gRPC from another task, so the block may end
    in a different context than it began in; there the old values cannot (and need not) be
    restored — the call's own context dies with its task — so that case is ignored.
    """
    tokens = [(var, var.set(value)) for var, value in values.items()]
    log_tokens = structlog.contextvars.bind_contextvars(**(log_fields or {}))
    try:
        yield
    finally:
        with suppress(ValueError):
            structlog.contextvars.reset_contextvars(**log_tokens)
        for var, token in reversed(tokens):
            with suppress(ValueError):
                var.reset(token)
