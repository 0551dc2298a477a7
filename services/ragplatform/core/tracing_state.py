"""Whether tracing is on (the provider it is on with), and the spans that need nothing else: a
module without grpc, so backends (which must not import grpc) can make spans too. `tracing.py`
turns it on and off and owns the gRPC side."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

TRACER_NAME = "ragplatform"


@dataclass
class Tracing:
    provider: TracerProvider | None = None


STATE = Tracing()


def tracer() -> trace.Tracer:
    """The tracer for hand-made spans (a no-op tracer when tracing is off)."""
    return trace.get_tracer(TRACER_NAME, tracer_provider=STATE.provider or trace.NoOpTracerProvider())


@contextmanager
def http_client_span(method: str, url: str, headers: MutableMapping[str, str]) -> Iterator[trace.Span | None]:
    """A CLIENT span around an HTTP request sent by a library that is not instrumented (the
    embedder's aiohttp requests), with `traceparent` added to `headers`; yields the span (to
    record the response status on), or None when tracing is off."""
    if STATE.provider is None:
        yield None
        return
    with tracer().start_as_current_span(
        method, kind=trace.SpanKind.CLIENT, attributes={"http.request.method": method, "url.full": url}
    ) as span:
        propagate.inject(headers)
        yield span


def store_span(operation: str) -> AbstractContextManager[Any]:
    """A CLIENT span around a write to the relational store that no gRPC hop shows (the gateway
    storing an Ask's exchange itself); nothing when tracing is off."""
    if STATE.provider is None:
        return nullcontext()
    return tracer().start_as_current_span(operation, kind=trace.SpanKind.CLIENT)
