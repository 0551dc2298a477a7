"""The shared service core, exercised through real gRPC on a free port.

The service under test is the real generation servicer; its answer generator is a scripted
test double (it stands in for a model so each test can choose how the call behaves).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent, AnswerRequest
from ragplatform.core.server import RunningService, ServiceApp, Wiring, start_service
from ragplatform.core.settings import GenerationSettings, SettingsError, load_settings
from ragplatform.domain.errors import NotFound
from ragplatform.domain.models import TokenUsage
from ragplatform.generation.service import GenerationService
from ragplatform.generation.servicer import GenerationServicer
from ragplatform.v1 import generation_pb2, generation_pb2_grpc


class ScriptedGenerator:
    """Test double for a model: behaviour chosen by the question text."""

    name = "scripted"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.calls = 0

    async def generate(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        self.calls += 1
        self.started.set()
        if request.question == "missing":
            raise NotFound("no such thing; check the id")
        if request.question == "crash":
            raise RuntimeError("secret internal detail")
        if request.question.startswith("slow"):
            await asyncio.sleep(float(request.question.split()[1]))
        yield AnswerDelta("hello ")
        yield AnswerDelta("world")
        yield AnswerDone([], TokenUsage(3, 2), "scripted", "stop")

    async def close(self) -> None:
        return None


def make_app(generator: ScriptedGenerator) -> ServiceApp:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        servicer = GenerationServicer(GenerationService(generator, 64))

        def register(server: grpc.aio.Server) -> Sequence[str]:
            generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
            return ["ragplatform.v1.GenerationService"]

        yield Wiring(register)

    return ServiceApp(name="generation", lifespan=lifespan)


@pytest.fixture
async def running() -> AsyncIterator[tuple[RunningService, ScriptedGenerator]]:
    generator = ScriptedGenerator()
    settings = load_settings(
        GenerationSettings, insecure_internal_calls=True, grpc_host="127.0.0.1", grpc_port=0, metrics_port=0
    )
    service = await start_service(make_app(generator), settings)
    yield service, generator
    await service.stop(grace=1.0)


def request(question: str) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(tenant_id="t1", question=question)


async def collect(channel: grpc.aio.Channel, question: str, **kwargs: object) -> list[generation_pb2.GenerateResponse]:
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    return [m async for m in stub.Generate(request(question), **kwargs)]


async def test_streams_and_reports_health_and_reflection(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, _ = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        messages = await collect(channel, "hi")
        assert "".join(m.delta for m in messages[:-1]) == "hello world"
        assert messages[-1].done.usage.total_tokens == 5
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "ragplatform.v1.GenerationService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        services = [s.name async for r in stub.ServerReflectionInfo(ask()) for s in r.list_services_response.service]
        assert "ragplatform.v1.GenerationService" in services
        assert "grpc.health.v1.Health" in services


async def test_domain_error_keeps_its_status_and_message(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, _ = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(channel, "missing")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no such thing; check the id"


async def test_unknown_error_is_internal_with_a_generic_message(
    running: tuple[RunningService, ScriptedGenerator], capfd: pytest.CaptureFixture[str]
) -> None:
    service, _ = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(channel, "crash", metadata=(("x-request-id", "req-42"),))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in (info.value.details() or "")
    assert "req-42" in (info.value.details() or "")


async def test_validation_error_is_invalid_argument(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, _ = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(channel, "   ")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "question is empty" in (info.value.details() or "")


async def test_client_deadline_gives_deadline_exceeded(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, _ = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(channel, "slow 5", timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_service_without_an_internal_token_does_not_start() -> None:
    settings = load_settings(GenerationSettings, grpc_host="127.0.0.1", grpc_port=0, metrics_enabled=False)
    with pytest.raises(SettingsError, match=r"RAG_INTERNAL_TOKEN is not set.*RAG_INSECURE_INTERNAL_CALLS=true"):
        await start_service(make_app(ScriptedGenerator()), settings)


async def test_internal_token_is_required_when_configured() -> None:
    settings = load_settings(
        GenerationSettings, grpc_host="127.0.0.1", grpc_port=0, metrics_enabled=False, internal_token="s3cret"
    )
    service = await start_service(make_app(ScriptedGenerator()), settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await collect(channel, "hi")
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = await collect(channel, "hi", metadata=(("x-ragplatform-internal-token", "s3cret"),))
            assert ok[-1].done.model == "scripted"
            # health stays open for kubelet probes
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await service.stop(grace=1.0)


async def test_drain_finishes_in_flight_calls_and_reports_not_serving(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, generator = running
    async with grpc.aio.insecure_channel(service.address) as channel:
        in_flight = asyncio.create_task(collect(channel, "slow 0.5"))
        await generator.started.wait()
        health = health_pb2_grpc.HealthStub(channel)
        stopper = asyncio.create_task(service.stop(grace=5.0, drain_delay=0.5))
        await asyncio.sleep(0.1)
        status = await health.Check(health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        messages = await in_flight
        assert messages[-1].done.model == "scripted"
        await stopper


async def test_a_background_loop_that_dies_turns_health_to_not_serving() -> None:
    async def dies(stopping: asyncio.Event) -> None:
        raise RuntimeError("the worker loop broke")

    app = make_app(ScriptedGenerator())
    app.background = [dies]
    settings = load_settings(
        GenerationSettings, insecure_internal_calls=True, grpc_host="127.0.0.1", grpc_port=0, metrics_enabled=False
    )
    service = await start_service(app, settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(50):
                reply = await health.Check(health_pb2.HealthCheckRequest())
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                await asyncio.sleep(0.02)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await service.stop(grace=1.0)


async def test_failure_reports_a_background_loop_that_died() -> None:
    async def worker_loop(stopping: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("queue backend vanished")

    app = make_app(ScriptedGenerator())
    app.background = (worker_loop,)
    settings = load_settings(
        GenerationSettings, insecure_internal_calls=True, grpc_host="127.0.0.1", grpc_port=0, metrics_enabled=False
    )
    service = await start_service(app, settings)
    try:
        reason = await asyncio.wait_for(service.failure(), timeout=5)
    finally:
        await service.stop(grace=1.0)
    assert "generation" in reason
    assert "queue backend vanished" in reason


async def test_failure_waits_while_the_service_is_healthy(
    running: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, _ = running
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(service.failure(), timeout=0.3)


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = load_settings(
            GenerationSettings,
            insecure_internal_calls=True,
            grpc_host="127.0.0.1",
            grpc_port=port,
            metrics_enabled=False,
        )
        with pytest.raises(OSError, match=f"could not bind 127.0.0.1:{port}; is the port in use"):
            await start_service(make_app(ScriptedGenerator()), settings)
