"""OpenTelemetry: the platform in this process with an in-memory span exporter. One Ask is one
trace, from the gateway (with its write of the exchange to the store) through retrieval and
generation to the LLM's and the embedder's HTTP requests, each span the child of the call that
caused it; an ingestion job
continues its upload's trace across the queue; on the production backends, each SQL statement and
Redis command is a span under the server span of the call that made it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.client import GatewayClient
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.core.tracing import disable_tracing, enable_tracing
from ragplatform.gateway.ask import STORE_TURNS_SPAN
from ragplatform.v1 import gateway_pb2, gateway_pb2_grpc
from tests.integration.services.conftest import InProcessPlatform, ServiceStarter, start_platform
from tests.support.openai_test_server import OpenAITestServer
from tests.support.servers import PostgresDatabase, RedisServer

QUESTION = "What is the shade of the Quokka lamp made of?"
DOCUMENT = b"The Quokka lamp has a shade of frosted basalt glass. It is assembled in Tromso."


@pytest_asyncio.fixture(loop_scope="module")
async def exporter() -> AsyncIterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    enable_tracing(provider)
    try:
        yield spans
    finally:
        disable_tracing()


@pytest_asyncio.fixture(loop_scope="module")
async def openai_double() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer() as double:
        yield double


@pytest_asyncio.fixture(loop_scope="module")
async def traced_platform(
    starter: ServiceStarter, exporter: InMemorySpanExporter, openai_double: OpenAITestServer
) -> InProcessPlatform:
    url = openai_double.base_url
    return await start_platform(
        starter,
        llm="openai",
        llm_url=url,
        llm_model="test-model",
        embedder="openai",
        embedding_url=url,
        embedding_model="test-embedding-model",
    )


async def wait_for_span(exporter: InMemorySpanExporter, match: Callable[[ReadableSpan], bool]) -> ReadableSpan:
    """Server spans end just after the client saw the last message: wait briefly for them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in exporter.get_finished_spans() if match(s)]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(
        "span not exported: " + ", ".join(f"{s.kind}:{s.name}:{s.parent}" for s in exporter.get_finished_spans())
    )


def named(name: str, kind: SpanKind) -> Callable[[ReadableSpan], bool]:
    return lambda s: s.name == name and s.kind == kind


def http_url(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Names of the span's ancestors, nearest first (following parent links within the trace)."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(f"{span.kind.name}:{span.name}")
    return names


def assert_the_job_continues_the_uploads_trace(spans: tuple[ReadableSpan, ...]) -> None:
    """Upload: gateway Ingest -> ingestion Upload, which queues the job with its traceparent;
    the worker's job span is a child of that Upload span, and its own calls (embedding the
    chunks, upserting them into retrieval) are the job span's children."""
    ingest = next(s for s in spans if s.name == "/ragplatform.v1.GatewayService/Ingest")
    job = next(s for s in spans if s.name == "ingestion job")
    by_id = {s.context.span_id: s for s in spans if s.context.trace_id == ingest.context.trace_id}
    assert job.context.trace_id == ingest.context.trace_id
    assert job.kind == SpanKind.CONSUMER
    assert ancestors(job, by_id) == [
        "SERVER:/ragplatform.v1.IngestionService/Upload",
        "CLIENT:/ragplatform.v1.IngestionService/Upload",
        "SERVER:/ragplatform.v1.GatewayService/Ingest",
    ]
    children = {
        f"{s.kind.name}:{s.name}" for s in by_id.values() if s.parent and s.parent.span_id == job.context.span_id
    }
    assert "CLIENT:/ragplatform.v1.RetrievalService/UpsertDocumentsChunks" in children
    assert any(
        http_url(s).endswith("/embeddings")
        for s in by_id.values()
        if s.parent and s.parent.span_id == job.context.span_id
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_one_ask_is_one_trace_through_every_hop_to_the_llm(
    traced_platform: InProcessPlatform, exporter: InMemorySpanExporter
) -> None:
    key, _ = await traced_platform.create_api_key("acme")
    async with GatewayClient(traced_platform.gateway.address, key) as client:
        reply = await client.ingest_bytes("lamp.txt", DOCUMENT)
        for _ in range(200):
            if (await client.get_job(reply.job.job_id)).chunks_done:
                break
            await asyncio.sleep(0.05)
        await wait_for_span(exporter, lambda s: s.name == "ingestion job" and s.status.is_ok)
        assert_the_job_continues_the_uploads_trace(exporter.get_finished_spans())
        exporter.clear()
        messages = [m async for m in client.ask(QUESTION)]
    assert "lamp.txt" in {c.filename for c in messages[-1].done.citations}

    root = await wait_for_span(exporter, named("/ragplatform.v1.GatewayService/Ask", SpanKind.SERVER))
    await wait_for_span(exporter, named(STORE_TURNS_SPAN, SpanKind.CLIENT))
    trace_id = root.context.trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in spans}
    assert root.parent is None  # the client sent no trace: the gateway starts it
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {trace_id}  # one Ask, one trace

    gateway = f"SERVER:{root.name}"
    for method in ("RetrievalService/Search", "GenerationService/Generate"):
        server = next(s for s in spans if s.name == f"/ragplatform.v1.{method}" and s.kind == SpanKind.SERVER)
        # server span <- the gateway's client span for the same method <- the gateway's Ask
        assert ancestors(server, by_id)[:2] == [f"CLIENT:/ragplatform.v1.{method}", gateway], method

    # a new conversation is created with its first exchange, written by the gateway itself
    [store] = [s for s in spans if s.name == STORE_TURNS_SPAN]
    assert ancestors(store, by_id)[:1] == [gateway]
    assert not [s for s in spans if "ConversationService" in s.name]

    chat = [s for s in spans if s.kind == SpanKind.CLIENT and http_url(s).endswith("/chat/completions")]
    assert len(chat) == 1
    assert ancestors(chat[0], by_id)[:3] == [
        "SERVER:/ragplatform.v1.GenerationService/Generate",
        "CLIENT:/ragplatform.v1.GenerationService/Generate",
        gateway,
    ]
    embed = [s for s in spans if s.kind == SpanKind.CLIENT and http_url(s).endswith("/embeddings")]
    assert embed
    assert all(ancestors(s, by_id)[0] == "SERVER:/ragplatform.v1.RetrievalService/Search" for s in embed)
    # the gateway's span covers every other span of the answer
    assert all(root.start_time <= s.start_time and s.end_time <= root.end_time for s in spans if s is not root)  # type: ignore[operator]


@pytest.mark.asyncio(loop_scope="module")
async def test_sql_statements_and_redis_commands_are_spans_under_the_server_span_that_made_them(
    starter: ServiceStarter,
    exporter: InMemorySpanExporter,
    postgres_database: PostgresDatabase,
    redis_server: RedisServer,
) -> None:
    backends = {"store_url": postgres_database.bouncer_url}
    conversation = await starter.start("conversation", **backends)
    gateway = await starter.start(
        "gateway", conversation_addr=conversation.address, redis_url=redis_server.url, **backends
    )
    store = await open_store(load_settings(StoreSettings, store_url=postgres_database.bouncer_url))
    try:
        key = generate_api_key()
        await store.create_api_key("acme", "tracing test", hash_api_key(key))
    finally:
        await store.close()
    exporter.clear()
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        await gateway_pb2_grpc.GatewayServiceStub(channel).ListConversations(
            gateway_pb2.GatewayListConversationsRequest(), metadata=(("authorization", f"Bearer {key}"),)
        )

    root = await wait_for_span(exporter, named("/ragplatform.v1.GatewayService/ListConversations", SpanKind.SERVER))
    callee = "SERVER:/ragplatform.v1.ConversationService/ListConversations"
    await wait_for_span(exporter, lambda s: f"{s.kind.name}:{s.name}" == callee)
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}  # nothing outside the call's trace
    gateway_span = f"SERVER:{root.name}"
    sql = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    commands = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    # the gateway looks the API key up (SQL) and takes a rate-limit token (Redis) inside its span;
    # the conversation service reads the list inside its own
    assert {s.kind for s in sql + commands} == {SpanKind.CLIENT}
    assert gateway_span in {ancestors(s, by_id)[0] for s in sql}
    assert callee in {ancestors(s, by_id)[0] for s in sql}
    assert "EVALSHA" in {s.name for s in commands}
    assert {ancestors(s, by_id)[0] for s in commands} == {gateway_span}
    assert all(key not in str(s.attributes) for s in spans)
