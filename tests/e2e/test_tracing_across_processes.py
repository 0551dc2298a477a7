"""Tracing as deployed: every service its own process, configured only by OTEL_* variables,
exporting over OTLP/gRPC to a collector. The collector here is a TEST DOUBLE: a real gRPC
server implementing OTLP's TraceService (the protocol's own generated stubs from
opentelemetry-proto) that keeps what it receives. One Ask (a follow-up, so its question is
rewritten from its history) must arrive as one trace whose spans come from the gateway, retrieval
and generation processes, linked parent to child across the process boundaries, with the
gateway's own read of the history and write of the exchange (its store, no conversation-service
hop) in it, and the gateway's JSON log line for the call carries its ids."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from ragplatform.client import GatewayClient
from ragplatform.gateway.ask import HISTORY_SPAN, STORE_TURNS_SPAN
from tests.e2e.conftest import wait_for_jobs
from tests.support.platform_processes import PlatformProcesses

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str


@dataclass
class CollectorDouble(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    spans: list[ReceivedSpan] = field(default_factory=list)

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend(
                    ReceivedSpan(
                        attributes.get("service.name", ""),
                        span.name,
                        span.kind,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                    )
                    for span in scope.spans
                )
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[CollectorDouble, int]]:
    double = CollectorDouble()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(double, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield double, port
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, collector: tuple[CollectorDouble, int]
) -> Iterator[PlatformProcesses]:
    _double, port = collector
    processes = PlatformProcesses(
        tmp_path_factory.mktemp("traced"),
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s, not every 5 s
        },
    )
    try:
        processes.start_all()
        yield processes
    except BaseException:
        for service in processes.processes:
            print(f"--- {service} log ---\n{processes.log_text(service)[-3000:]}")
        raise
    finally:
        processes.stop_all()


async def eventually_spans(double: CollectorDouble, trace_id: str, services: set[str]) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        spans = [s for s in double.spans if s.trace_id == trace_id]
        if services <= {s.service for s in spans}:
            return spans
        await asyncio.sleep(0.1)
    raise AssertionError(f"trace {trace_id} has spans only from {sorted({s.service for s in spans})}")


@pytest.fixture
async def client(traced: PlatformProcesses) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(traced.gateway, traced.create_api_key("acme"), timeout=30) as gateway:
        yield gateway


def gateway_rpc_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("event") == "rpc":
                lines.append(line)
    return lines


async def eventually_ask_line(log: Path, request_id: str) -> dict[str, Any]:
    """The gateway's access-log line of one Ask, read until it appears.

    One CI run found no such line on a single read right after the stream ended (the cause is not
    known; the line is written from the call's `finally`), so the test waits for it, and shows the
    log's tail if it never comes.
    """
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in gateway_rpc_lines(log):
            if line.get("request_id") == request_id and line.get("method", "").endswith("/Ask"):
                return line
        await asyncio.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"the gateway logged no Ask line for request {request_id}; its log ends:\n{tail}")


async def test_one_ask_is_one_trace_across_the_service_processes(
    traced: PlatformProcesses, collector: tuple[CollectorDouble, int], client: GatewayClient
) -> None:
    double, _port = collector
    reply = await client.ingest_bytes("lamp.txt", b"The Quokka lamp glows amber and draws 4 watts.")
    await wait_for_jobs(client, [reply.job.job_id])
    first = [m async for m in client.ask("How many watts does the Quokka lamp draw?")]
    conversation_id = first[-1].done.conversation_id
    messages = [m async for m in client.ask("And its colour?", conversation_id=conversation_id)]
    assert messages[-1].done.conversation_id == conversation_id
    request_id = messages[-1].done.request_id

    line = await eventually_ask_line(traced.logs["gateway"], request_id)
    trace_id = line["trace_id"]  # the access-log line carries the call's trace
    names = {f"ragplatform-{s}" for s in ("gateway", "retrieval", "generation")}
    spans = await eventually_spans(double, trace_id, names)
    by_id = {s.span_id: s for s in spans}
    root = next(s for s in spans if s.name == "/ragplatform.v1.GatewayService/Ask")
    assert root.service == "ragplatform-gateway"
    assert root.parent_span_id == ""
    assert root.span_id == line["span_id"]
    for service, method in (
        ("retrieval", "RetrievalService/Search"),
        ("generation", "GenerationService/RewriteQuery"),
        ("generation", "GenerationService/Generate"),
    ):
        server = next(s for s in spans if s.service == f"ragplatform-{service}" and s.name.endswith(method))
        caller = by_id[server.parent_span_id]  # a span of another process: the gateway's client span
        assert (caller.service, caller.name, caller.parent_span_id) == (
            "ragplatform-gateway",
            server.name,
            root.span_id,
        )
    # the gateway reads the history and stores the exchange itself: spans of its own, under the Ask
    for name in (HISTORY_SPAN, STORE_TURNS_SPAN):
        [store] = [s for s in spans if s.name == name]
        assert (store.service, store.parent_span_id) == ("ragplatform-gateway", root.span_id), name
    assert not [s for s in spans if "ConversationService" in s.name]
    # the upload's trace continues in the worker process
    upload_traces = {s.trace_id for s in double.spans if s.name == "/ragplatform.v1.GatewayService/Ingest"}
    job_spans = [s for s in double.spans if s.name == "ingestion job"]
    assert job_spans
    assert {s.service for s in job_spans} == {"ragplatform-ingestion-worker"}
    assert {s.trace_id for s in job_spans} <= upload_traces
