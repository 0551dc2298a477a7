"""Tracing is off unless the OTEL_* variables ask for it, and then costs nothing: no interceptor,
no HTTP hook, no patched SQL or Redis client, no log processor. When on, log lines written inside
a span carry its ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from ragplatform.core import tracing, tracing_state
from ragplatform.core.logging import configure_logging
from ragplatform.core.server import ServiceApp, build_interceptors, no_resources
from ragplatform.core.settings import CommonSettings, load_settings
from tests.support.instrumented_clients import TRACED_METHODS, patched_client_methods


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),  # naming a service exports nothing by itself
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, False),
    ],
)
def test_tracing_is_requested_only_by_an_exporter_or_endpoint(environ: dict[str, str], requested: bool) -> None:
    assert tracing.tracing_requested(environ) is requested


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin' is not supported"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            "set grpc",
        ),
    ],
)
def test_an_unsupported_exporter_is_a_clear_error(environ: dict[str, str], says: str) -> None:
    with pytest.raises(tracing.TracingConfigError, match=says):
        tracing.configure_tracing("gateway", environ)
    assert not tracing.tracing_enabled()


def _app() -> ServiceApp:
    return ServiceApp(name="test", lifespan=lambda: no_resources(lambda server: []))


def test_off_means_no_interceptor_no_http_hook_and_no_patched_client() -> None:
    assert tracing.configure_tracing("gateway", {}) is False
    assert not tracing.tracing_enabled()
    names = [type(i).__module__ for i in build_interceptors(_app(), load_settings(CommonSettings))]
    assert not any("opentelemetry" in name for name in names)
    assert tracing.client_interceptors() == []
    assert tracing.inject_trace_context() == ""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert patched_client_methods() == []


def test_on_patches_the_sql_and_redis_clients_and_off_unpatches_them() -> None:
    tracing.enable_tracing(TracerProvider())
    try:
        assert len(patched_client_methods()) == sum(map(len, TRACED_METHODS.values()))
    finally:
        tracing.disable_tracing()
    assert patched_client_methods() == []


@pytest.fixture
def enabled() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    tracing.enable_tracing(provider)
    try:
        yield provider
    finally:
        tracing.disable_tracing()


def test_on_adds_the_server_interceptor_outermost(enabled: TracerProvider) -> None:
    chain = build_interceptors(_app(), load_settings(CommonSettings))
    assert "opentelemetry" in type(chain[0]).__module__
    assert len(tracing.client_interceptors()) == 4  # one per call kind


def test_log_lines_inside_a_span_carry_its_ids(enabled: TracerProvider, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", service="test", trace_ids=True)
    try:
        log = structlog.get_logger("test")
        with tracing_state.tracer().start_as_current_span("work") as span:
            log.info("inside")
            traceparent = tracing.inject_trace_context()
        log.info("outside")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    inside, outside = (next(line for line in lines if line["event"] == name) for name in ("inside", "outside"))
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert traceparent.startswith(f"00-{inside['trace_id']}-{inside['span_id']}-")
    assert "trace_id" not in outside
