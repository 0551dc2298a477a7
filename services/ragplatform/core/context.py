"""Per-request context carried in ContextVars: request id, tenant, deadline.

Set by the server interceptors, read by logging, by outgoing clients (which forward the
request id and tenant, and shorten their own timeout to the caller's remaining deadline) and by
domain code that needs the tenant for logs.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
tenant_var: ContextVar[str] = ContextVar("tenant", default="")
# Absolute time.monotonic() by which the current call must finish; None when unbounded.
deadline_var: ContextVar[float | None] = ContextVar("deadline", default=None)

REQUEST_ID_HEADER = "x-request-id"
TENANT_HEADER = "x-ragplatform-tenant"
INTERNAL_TOKEN_HEADER = "x-ragplatform-internal-token"

# A client's request id is kept when it is short and plain (it goes into every log line and
# back to the client); anything else is replaced by a generated one.
REQUEST_ID_MAX_CHARS = 64
_PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,%d}" % REQUEST_ID_MAX_CHARS)  # noqa: UP031


@dataclass
class CallRecord:
    """What the access log writes when a call ends; interceptors inside it fill it in (the
    API-key check records the authenticated tenant: the only tenant the gateway logs)."""

    tenant: str = ""


call_record_var: ContextVar[CallRecord | None] = ContextVar("call_record", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(sent: str) -> str:
    """The client's request id when it is plain (at most 64 of `A-Z a-z 0-9 . _ : / -`), else a new one."""
    return sent if _PLAIN_REQUEST_ID.fullmatch(sent) else new_request_id()


def record_authenticated_tenant(tenant: str) -> None:
    """Tell the access log which tenant the caller authenticated as."""
    record = call_record_var.get()
    if record is not None:
        record.tenant = tenant


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
