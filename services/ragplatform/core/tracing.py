"""OpenTelemetry tracing, configured by the standard `OTEL_*` variables; off, and free, when unset.

Tracing is on when an OTLP endpoint is named (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER` is set to `otlp` or `console`;
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off. (The SDK's own default
would export to localhost:4317 with nothing set; here nothing is sent unless asked for.) The
exporter, batching and sampling read their usual variables (`OTEL_EXPORTER_OTLP_HEADERS`,
`OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

When on: every gRPC server call gets a span (its parent comes from the caller's `traceparent`
metadata), every call to another service gets a client span that sends `traceparent`, the
`openai` client's HTTP requests (the LLM's, through httpx) and the embedder's (aiohttp,
`tracing_state.http_client_span`) get spans, so do SQL statements (asyncpg) and Redis
commands (redis-py) made inside a trace, ingestion jobs continue the upload's trace across the
queue, and log lines carry `trace_id` and `span_id`. When off, none of those interceptors or
hooks is installed and no library is patched: the call path is unchanged.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from ragplatform.core.tracing_state import STATE as _STATE
from ragplatform.core.tracing_state import tracer

#: The OTEL_* variables this setup honours (the operator renders some of them).
OTEL_VARIABLES = frozenset(
    {
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_INSECURE",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS",
    }
)
# Infrastructure calls (probes every few seconds, reflection) would only bury the real traces.
_UNTRACED_SERVICES = ("grpc.health.", "grpc.reflection.")


class TracingConfigError(ValueError):
    """An OTEL_* variable asks for something this build cannot do; the message says what to set."""


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces to be exported (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        return ConsoleSpanExporter()
    if kind != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={kind!r} is not supported; use otlp, console or none")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol.strip().lower() != "grpc":
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; unset it or set grpc "
            "(OTLP over gRPC, usually port 4317)"
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, TLS and timeout from OTEL_EXPORTER_OTLP_*


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Set up tracing for this process when the environment asks for it; return whether it is on.

    `service` names the process (`service.name` = `ragplatform-<service>`, unless
    `OTEL_SERVICE_NAME` says otherwise). Raises `TracingConfigError` for an unsupported exporter.
    """
    if not tracing_requested(environ):
        return False
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"ragplatform-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    trace.set_tracer_provider(provider)
    enable_tracing(provider)
    return True


def enable_tracing(provider: TracerProvider) -> None:
    """Trace with `provider` from now on (services started later get the interceptors; httpx
    requests, SQL statements and Redis commands get spans at once). `configure_tracing` calls it;
    tests call it with an in-memory exporter, and `disable_tracing` afterwards."""
    _STATE.provider = provider
    _instrument(_http_instrumentors(), provider)
    _instrument(_data_instrumentors(), _within_traces_only(provider))


def _instrument(instrumentors: list[Any], provider: TracerProvider) -> None:
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def _http_instrumentors() -> list[Any]:
    """Instrumentors for the HTTP client libraries installed: the `openai` client uses httpx (or,
    in its newer releases, the httpx2 fork), so both are covered."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

    found: list[Any] = [HTTPXClientInstrumentor()]
    if importlib.util.find_spec("httpx2") is not None:
        found.append(HTTPX2ClientInstrumentor())
    return found


def _data_instrumentors() -> list[Any]:
    """Instrumentors for the store's and Redis's client libraries (they patch the classes, so
    pools and clients opened earlier are covered too).

    asyncpg: a CLIENT span per statement (`execute`, `fetch*`, a transaction's BEGIN/COMMIT),
    named by its first word, with the statement text (placeholders, never the parameters:
    `capture_parameters` stays off), database, user and address. redis-py: a CLIENT span per
    command or pipeline, named by the command, whose `db.statement` keeps only the command
    name (`EVALSHA ? ? ? ?`): no key, value or script argument is recorded."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    return [AsyncPGInstrumentor(capture_parameters=False), RedisInstrumentor()]  # type: ignore[no-untyped-call]


def _within_traces_only(provider: TracerProvider) -> TracerProvider:
    """A provider that exports through `provider`'s span processors but starts no trace: a
    statement or command made inside a span is its child (sampled as its parent is), one made
    outside any (a worker's queue poll, the gateway's API-key revision poll) makes no span, so
    background polling does not bury the real traces under one-span traces."""
    return TracerProvider(
        sampler=ParentBased(root=ALWAYS_OFF),
        resource=provider.resource,
        shutdown_on_exit=False,  # `provider` owns the processors and shuts them down
        # No public accessor: sharing the processors is what makes these spans part of the
        # provider's traces (same exporter, same batching).
        active_span_processor=provider._active_span_processor,
    )


def disable_tracing() -> None:
    """Stop adding tracing to services started from now on, unpatch the client libraries;
    flush and drop the provider."""
    provider, _STATE.provider = _STATE.provider, None
    for instrumentor in [*_http_instrumentors(), *_data_instrumentors()]:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    if provider is not None:
        provider.force_flush()


def tracing_enabled() -> bool:
    return _STATE.provider is not None


def flush_traces(timeout_millis: int = 5_000) -> None:
    """Export what is buffered (on shutdown, so the last calls' spans are not lost)."""
    if _STATE.provider is not None:
        _STATE.provider.force_flush(timeout_millis)


def _traced(details: Any) -> bool:
    method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
    return not method.lstrip("/").startswith(_UNTRACED_SERVICES)


def server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The tracing server interceptor (to run outermost), or none when tracing is off."""
    if _STATE.provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_STATE.provider, filter_=_traced)]  # type: ignore[no-untyped-call]


def client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """Tracing client interceptors for a channel to another service, or none when tracing is off."""
    if _STATE.provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_STATE.provider, filter_=_traced))  # type: ignore[no-untyped-call]


def inject_trace_context() -> str:
    """The current span as a W3C `traceparent` value, for a queue message ('' when off or outside
    a span)."""
    if _STATE.provider is None:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def extract_trace_context(traceparent: str) -> Any:
    """The context a `traceparent` value names (None when empty), to parent a span on."""
    if not traceparent:
        return None
    return propagate.extract({"traceparent": traceparent})


def job_span(traceparent: str, job_id: str, delivery: int) -> AbstractContextManager[Any]:
    """The span of one attempt at an ingestion job, a child of the upload that queued it (the
    single-message "process" span of OpenTelemetry's messaging conventions). Nothing when off."""
    if _STATE.provider is None:
        return nullcontext()
    return tracer().start_as_current_span(
        "ingestion job",
        context=extract_trace_context(traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes={"ragplatform.job_id": job_id, "messaging.message.delivery_count": delivery},
    )


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event
