"""Outgoing gRPC: channels to internal services and the translation of their errors.

Channels resolve with `dns:///` and balance per call with `round_robin` (a long-lived HTTP/2
connection defeats kube-proxy's per-connection balancing, so Services are headless). Every call
forwards the request id and tenant, the internal token, and a timeout no longer than what is
left of the caller's own deadline, and an `x-request-start` stamp of when it was made, so the
service behind measures the wait in front of it (`ragplatform_admission_queue_seconds`: gRPC's
queue, mostly). Only read-only methods are retried (on UNAVAILABLE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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
from ragplatform.core.interceptors.admission import CONGESTED, upstream_congested, upstream_refused
from ragplatform.core.request_start import REQUEST_START_HEADER, request_start_value
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


def forwarded(
    metadata: Sequence[tuple[str, str | bytes]] | None, timeout: float | None, internal_token: str | None
) -> tuple[tuple[tuple[str, str | bytes], ...], float | None]:
    """A call's metadata with the request id, tenant, internal token and a stamp of when it was
    made (`x-request-start`, unless the metadata has one) added, and its timeout capped at what is
    left of the caller's own deadline."""
    extra: list[tuple[str, str | bytes]] = list(metadata or ())
    if not any(key == REQUEST_START_HEADER for key, _ in extra):
        extra.append((REQUEST_START_HEADER, request_start_value()))
    if request_id := request_id_var.get():
        extra.append((REQUEST_ID_HEADER, request_id))
    if tenant := tenant_var.get():
        extra.append((TENANT_HEADER, tenant))
    if internal_token:
        extra.append((INTERNAL_TOKEN_HEADER, internal_token))
    left = remaining_seconds()
    if left is not None and (timeout is None or left < timeout):
        timeout = left
    return tuple(extra), timeout


class _ForwardingCall:
    """A multicallable that forwards the call's context (see `forwarded`), then calls through."""

    __slots__ = ("_call", "_token")

    def __init__(self, call: Any, internal_token: str | None) -> None:
        self._call = call
        self._token = internal_token

    def __call__(
        self, request: Any = None, *, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        metadata, timeout = forwarded(metadata, timeout, self._token)
        return self._call(request, timeout=timeout, metadata=metadata, **options)


class ForwardingChannel(grpc.aio.Channel):
    """A channel whose calls carry the request id, tenant and internal token, with a timeout no
    longer than the caller's remaining deadline. Done in the call itself rather than by client
    interceptors: grpc.aio runs every intercepted call through an extra task and call object,
    a measurable share of the gateway's CPU per Ask."""

    def __init__(self, channel: grpc.aio.Channel, internal_token: str | None) -> None:
        self._channel = channel
        self._token = internal_token

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _ForwardingCall(self._channel.unary_unary(*args, **kwargs), self._token)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _ForwardingCall(self._channel.unary_stream(*args, **kwargs), self._token)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _ForwardingCall(self._channel.stream_unary(*args, **kwargs), self._token)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _ForwardingCall(self._channel.stream_stream(*args, **kwargs), self._token)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> ForwardingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def target_for(address: str) -> str:
    """`host:port` -> `dns:///host:port`; addresses with a scheme are kept."""
    return (
        address if "://" in address or address.startswith(("dns:", "unix:", "ipv4:", "ipv6:")) else f"dns:///{address}"
    )


def open_channel(address: str, internal_token: str | None = None) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(
        target_for(address),
        options=[
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=tracing_interceptors() or None,  # none at all unless tracing is on
    )
    return ForwardingChannel(channel, internal_token)


async def note_congestion(call: Any) -> None:
    """After an upstream call has finished: if its service marked the answer congested, lower this
    process's admission limit as for a refusal, unless answers govern it (see
    core/interceptors/admission.py)."""
    trailing = await call.trailing_metadata()
    if trailing is not None and trailing.get(CONGESTED[0]) == CONGESTED[1]:
        upstream_congested()


@contextmanager
def upstream_errors(service: str, *, admission_signal: bool = False) -> Iterator[None]:
    """Turn an upstream call's failure into the matching domain error (so it maps back to the same
    status for our caller), naming the service when it could not be reached. With
    `admission_signal` (the Ask path's calls), an upstream at capacity (RESOURCE_EXHAUSTED) also
    lowers this process's own admission limit; other calls (an upload refused by an ingestion
    tier bound by its store pool, say) must not make the gateway refuse Asks."""
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
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and admission_signal:
            upstream_refused()
        raise error_for(code, message, retry_after_from(exc.trailing_metadata())) from None
