"""With tracing on, every SQL statement (asyncpg, here through PgBouncer) and every Redis command
(redis-py) made inside a trace is a CLIENT span, the child of the span that made it, carrying the
statement's text but no parameter, key or value; statements and commands outside any trace make
no span. With tracing off no client library is patched and no span appears."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ragplatform.backends.cache.redis import RedisAnswerCache, RedisRateLimiter
from ragplatform.backends.redis_connection import connect_redis
from ragplatform.backends.store.postgres import PostgresStore
from ragplatform.core import tracing, tracing_state
from ragplatform.core.settings import StoreSettings, load_settings
from tests.support.instrumented_clients import patched_client_methods
from tests.support.servers import PostgresDatabase, RedisServer
from tests.support.store_contract import new_tenant, upload

PAYLOAD = b"an answer that must never reach a trace"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, exported in memory; off (and every client library unpatched) afterwards, so
    no other test runs with the instrumentors installed."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable_tracing(provider)
    try:
        yield exporter
    finally:
        tracing.disable_tracing()
        assert patched_client_methods() == []


def server_span(name: str = "/ragplatform.v1.GatewayService/Ask") -> AbstractContextManager[trace.Span]:
    """A stand-in for the gRPC server span a service call runs under (same tracer provider)."""
    return tracing_state.tracer().start_as_current_span(name, kind=SpanKind.SERVER)


def statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text") or "")


def children(exporter: InMemorySpanExporter, parent: trace.Span) -> list[ReadableSpan]:
    context = parent.get_span_context()
    return [s for s in exporter.get_finished_spans() if s.parent is not None and s.parent.span_id == context.span_id]


@pytest.fixture
async def store(postgres_database: PostgresDatabase) -> AsyncIterator[PostgresStore]:
    settings = load_settings(StoreSettings, store_url=postgres_database.bouncer_url, store_pool_min=1, store_pool_max=2)
    store = PostgresStore(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_a_store_call_through_pgbouncer_is_one_client_span_per_statement_under_the_server_span(
    spans: InMemorySpanExporter, postgres_database: PostgresDatabase, store: PostgresStore
) -> None:
    # Opening the store (migrations, schema check) ran outside any trace: no one-span traces.
    assert [s.name for s in spans.get_finished_spans()] == []
    tenant = new_tenant()
    with server_span() as parent:
        await store.record_upload(upload(tenant, content="traced"))

    statements = children(spans, parent)
    assert statements, "no SQL span: the asyncpg instrumentation is not installed"
    trace_id = parent.get_span_context().trace_id
    assert {s.context.trace_id for s in statements} == {trace_id}
    assert {s.kind for s in statements} == {SpanKind.CLIENT}
    assert {(s.attributes or {}).get("db.system") for s in statements} == {"postgresql"}
    # the connection the pool holds is PgBouncer's, not PostgreSQL's
    bouncer_port = urlsplit(postgres_database.bouncer_url).port
    assert {(s.attributes or {}).get("net.peer.port") for s in statements} == {bouncer_port}
    texts = [statement(s) for s in statements]
    assert (texts[0], texts[-1]) == ("BEGIN;", "COMMIT;")
    assert any("pg_advisory_xact_lock(hashtextextended($1, 0))" in text for text in texts)
    # statement text only: the parameters (a tenant id, a content hash) are not recorded
    assert all(tenant not in str(s.attributes) for s in statements)


async def test_a_redis_command_is_a_client_span_with_no_key_or_value(
    spans: InMemorySpanExporter, redis_server: RedisServer, redis_namespace: str
) -> None:
    text, raw = connect_redis(redis_server.url), connect_redis(redis_server.url, decode_responses=False)
    limiter = RedisRateLimiter(text, redis_server.url, redis_namespace)
    cache = RedisAnswerCache(raw, redis_server.url, redis_namespace)
    tenant = new_tenant()
    try:
        await limiter.acquire(f"outside-{tenant}", rate_per_second=10.0, burst=3)  # loads the script
        assert spans.get_finished_spans() == ()  # outside any trace: no span
        with server_span() as parent:
            assert await limiter.acquire(f"key-{tenant}", rate_per_second=10.0, burst=3) == 0.0
            await cache.set(f"answer-{tenant}", PAYLOAD, ttl_seconds=60)
    finally:
        await text.aclose()
        await raw.aclose()

    commands = children(spans, parent)
    assert [s.name for s in commands] == ["EVALSHA", "SET"], "the redis instrumentation is not installed"
    assert {s.context.trace_id for s in commands} == {parent.get_span_context().trace_id}
    assert {s.kind for s in commands} == {SpanKind.CLIENT}
    assert statement(commands[0]).startswith("EVALSHA ?")
    for span in commands:  # command names only: no key (tenant), no value (payload)
        assert tenant not in str(span.attributes)
        assert PAYLOAD.decode() not in str(span.attributes)


async def test_with_tracing_off_nothing_is_patched_and_no_span_appears(
    postgres_database: PostgresDatabase, store: PostgresStore, redis_server: RedisServer, redis_namespace: str
) -> None:
    assert not tracing.tracing_enabled()
    assert patched_client_methods() == []
    # A recording span is current (as an app's own tracing would make), yet the store and Redis
    # calls under it add nothing: no library is patched.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = connect_redis(redis_server.url)
    try:
        with provider.get_tracer("test").start_as_current_span("outer", kind=SpanKind.SERVER):
            await store.record_upload(upload(new_tenant(), content="untraced"))
            await RedisRateLimiter(client, redis_server.url, redis_namespace).acquire("k", 10.0, 3)
    finally:
        await client.aclose()
    assert [s.name for s in exporter.get_finished_spans()] == ["outer"]
