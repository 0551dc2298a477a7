"""Outgoing gRPC: channels to internal services and the translation of their errors.

Channels resolve with `dns:///` and balance per call with `round_robin` (a long-lived HTTP/2
connection defeats kube-proxy's per-connection balancing, so Services are headless). Every call
forwards the request id and tenant, the internal token, and a timeout no longer than what is
left of the caller's own deadline. Only read-only methods are retried (on UNAVAILABLE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from ragplatform.core.context import (
    INTERNAL_TOKEN_HEADER,
    REQUEST_ID_HEADER,
    TENANT_HEADER,
    remaining_seconds,
    request_id_var,
    tenant_var,
)
from ragplatform.core.error_mapping import error_for, retry_after_from
from ragplatform.core.server import MAX_MESSAGE_BYTES
from ragplatform.core.tracing import client_interceptors as tracing_interceptors

# Read-only methods: safe to retry when the server was unavailable.
_RETRYABLE = [
    {"service": "ragplatform.v1.RetrievalService", "method": "Search"},
    {"service": "ragplatform.v1.IngestionService", "method": "GetJob"},
    {"service": "ragplatform.v1.IngestionService", "method": "ListJobs"},
    {"service": "ragplatform.v1.IngestionService", "method": "ListDocuments"},
    {"service": "ragplatform.v1.ConversationService", "method": "GetHistory"},
    {"service": "ragplatform.v1.ConversationService", "method": "ListConversations"},
]
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": _RETRYABLE,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


class _ContextForwarder:
    """Adds request id, tenant and internal token; caps the timeout at the caller's deadline."""

    def __init__(self, internal_token: str | None) -> None:
        self._token = internal_token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if request_id := request_id_var.get():
            metadata[REQUEST_ID_HEADER] = request_id
        if tenant := tenant_var.get():
            metadata[TENANT_HEADER] = tenant
        if self._token:
            metadata[INTERNAL_TOKEN_HEADER] = self._token
        timeout = details.timeout
        left = remaining_seconds()
        if left is not None and (timeout is None or left < timeout):
            timeout = left
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under ONE call kind, so each kind needs its own object.
class _UnaryUnary(_ContextForwarder, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_ContextForwarder, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_ContextForwarder, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_ContextForwarder, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def target_for(address: str) -> str:
    """`host:port` -> `dns:///host:port`; addresses with a scheme are kept."""
    return (
        address if "://" in address or address.startswith(("dns:", "unix:", "ipv4:", "ipv6:")) else f"dns:///{address}"
    )


def open_channel(address: str, internal_token: str | None = None) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target_for(address),
        options=[
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=[
            *tracing_interceptors(),
            *(cls(internal_token) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)),
        ],
    )


@contextmanager
def upstream_errors(service: str) -> Iterator[None]:
    """Turn an upstream call's failure into the matching domain error (so it maps back to the same
    status for our caller), naming the service when it could not be reached."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        message = exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"the {service} service is unavailable ({message}); retry shortly"
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            message = f"the {service} service refused the internal token; check RAG_INTERNAL_TOKEN on both sides"
            code = grpc.StatusCode.INTERNAL
        elif code == grpc.StatusCode.INTERNAL:
            message = f"the {service} service failed: {message}"
        raise error_for(code, message, retry_after_from(exc.trailing_metadata())) from None
