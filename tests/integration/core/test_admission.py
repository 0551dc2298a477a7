"""Admission control through real gRPC: a process at RAG_MAX_IN_FLIGHT refuses the excess at once
with RESOURCE_EXHAUSTED and a retry-after hint, streams hold their slot until they end, and
health checks are never refused. (The generator is the scripted test double of test_server.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from ragplatform.core.server import RunningService, start_service
from ragplatform.core.settings import GenerationSettings, load_settings
from ragplatform.v1 import generation_pb2, generation_pb2_grpc
from tests.integration.core.test_server import ScriptedGenerator, make_app

METHOD = "/ragplatform.v1.GenerationService/Generate"


@pytest.fixture
async def limited() -> AsyncIterator[RunningService]:
    settings = load_settings(
        GenerationSettings,
        insecure_internal_calls=True,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        max_in_flight=2,
        admission_retry_after_seconds=0.5,
    )
    service = await start_service(make_app(ScriptedGenerator()), settings)
    yield service
    await service.stop(grace=1.0)


def refused_so_far() -> float:
    value = REGISTRY.get_sample_value(
        "ragplatform_grpc_server_refused_total", {"service": "generation", "method": METHOD}
    )
    return value or 0.0


async def first_message(stream: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
    """Wait until the stream is under way (its first message arrived): it holds a slot now."""
    async for _message in stream:
        return


async def test_the_excess_is_refused_with_a_retry_hint_and_streams_hold_their_slot(limited: RunningService) -> None:
    async with grpc.aio.insecure_channel(limited.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        # Two streams that stay open (the double waits before its first delta): the limit.
        held = [stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="slow 30")) for _ in range(2)]
        await asyncio.sleep(0.3)  # let both reach the server
        before = refused_so_far()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await first_message(stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi")))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at capacity" in (info.value.details() or "")
        assert dict(info.value.trailing_metadata() or ())["retry-after-seconds"] == "0.500"
        assert refused_so_far() == before + 1
        # Health is never refused, even at capacity.
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # A stream that ends (here: cancelled by its caller) gives its slot back.
        held[0].cancel()
        await asyncio.sleep(0.3)
        answer = [m async for m in stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))]
        assert answer[-1].WhichOneof("event") == "done"
        held[1].cancel()


async def test_finished_calls_free_their_slots(limited: RunningService) -> None:
    async with grpc.aio.insecure_channel(limited.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)

        async def answer() -> str:
            messages = [m async for m in stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))]
            return str(messages[-1].WhichOneof("event"))

        for _ in range(5):  # more calls than the limit, one after another: none refused
            assert await answer() == "done"
        # ... and the count is back to zero: two at once (the limit) both pass.
        assert list(await asyncio.gather(answer(), answer())) == ["done", "done"]
