"""Admission control through real gRPC: a process at its limit refuses the excess at once with
RESOURCE_EXHAUSTED and a retry-after hint, streams hold their slot until they end, health checks
are never refused, and a process whose event loop falls behind lowers its limit and refuses
before the call reaches the service. (The generator is the scripted test double of test_server.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.clients import note_congestion, open_channel
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from ragplatform.core.request_start import REQUEST_START_HEADER, request_start_value
from ragplatform.core.server import RunningService, start_service
from ragplatform.core.settings import GenerationSettings, load_settings
from ragplatform.v1 import generation_pb2, generation_pb2_grpc
from tests.integration.core.test_server import ScriptedGenerator, make_app

METHOD = "/ragplatform.v1.GenerationService/Generate"


def generation_settings(**admission: float) -> GenerationSettings:
    """A generation service on a free loopback port, with these admission settings."""
    return load_settings(
        GenerationSettings,
        insecure_internal_calls=True,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        admission_retry_after_seconds=0.5,
        **admission,
    )


@pytest.fixture
async def limited() -> AsyncIterator[RunningService]:
    settings = generation_settings(
        max_in_flight=2,
        admission_lag_target_seconds=0,  # a fixed limit of 2, however loaded the machine
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
        # A unary call is refused the same way (its request is not even read).
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RewriteQuery(generation_pb2.RewriteQueryRequest(tenant_id="t", question="q " * 2000))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(info.value.trailing_metadata() or ())["retry-after-seconds"] == "0.500"
        # Health is never refused, even at capacity.
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # A stream that ends (here: cancelled by its caller) gives its slot back.
        held[0].cancel()
        await asyncio.sleep(0.3)
        answer = [m async for m in stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))]
        assert answer[-1].WhichOneof("event") == "done"
        held[1].cancel()


def waited(outcome: str) -> tuple[float, float]:
    """(calls, seconds in all) generation's admission control saw waiting before it decided."""
    labels = {"service": "generation", "outcome": outcome}
    count = REGISTRY.get_sample_value("ragplatform_admission_queue_seconds_count", labels) or 0.0
    return count, REGISTRY.get_sample_value("ragplatform_admission_queue_seconds_sum", labels) or 0.0


async def test_the_wait_before_a_decision_is_measured_from_the_callers_stamp(limited: RunningService) -> None:
    """A call stamped x-request-start (as a proxy or client does) shows how long it waited before
    the process admitted or refused it; calls without the stamp are not counted."""
    async with grpc.aio.insecure_channel(limited.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.GenerateRequest(tenant_id="t", question="hi")
        admitted, refused = waited("admitted"), waited("refused")
        stamp = ((REQUEST_START_HEADER, request_start_value(time.time() - 0.3)),)
        assert [m async for m in stub.Generate(request, metadata=stamp)][-1].WhichOneof("event") == "done"
        count, seconds = waited("admitted")
        assert count == admitted[0] + 1
        assert 0.3 <= seconds - admitted[1] < 30

        held = [stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="slow 30")) for _ in range(2)]
        await asyncio.sleep(0.3)  # both under way: the limit of 2 is reached
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await first_message(stub.Generate(request, metadata=stamp))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        count, seconds = waited("refused")
        assert count == refused[0] + 1
        assert 0.3 <= seconds - refused[1] < 30
        # Unstamped calls (the two held streams) were not counted.
        assert waited("admitted")[0] == admitted[0] + 1
        for call in held:
            call.cancel()


async def test_a_call_between_services_carries_its_stamp_so_the_wait_behind_is_measured(
    limited: RunningService,
) -> None:
    """The channel services call each other through stamps every call with when it was made: the
    service behind counts the wait in front of it with no stamp from its caller's code, and a
    stamp the caller gives is kept, not replaced."""
    async with open_channel(limited.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.GenerateRequest(tenant_id="t", question="hi")
        before = waited("admitted")
        assert [m async for m in stub.Generate(request)][-1].WhichOneof("event") == "done"
        count, seconds = waited("admitted")
        assert count == before[0] + 1
        assert 0 <= seconds - before[1] < 5
        stamp = ((REQUEST_START_HEADER, request_start_value(time.time() - 0.3)),)
        assert [m async for m in stub.Generate(request, metadata=stamp)][-1].WhichOneof("event") == "done"
        count, total = waited("admitted")
        assert count == before[0] + 2
        assert 0.3 <= total - seconds < 30


async def test_calls_beyond_the_admission_rate_are_refused_at_once_and_admitted_again_later() -> None:
    """With RAG_ADMISSION_PACE_SECONDS a process admits its RAG_MAX_IN_FLIGHT calls at most once per
    that many seconds (2 x sqrt of them at once): the excess is refused like a call over the limit,
    with the retry hint and a message saying the rate; once the rate's interval has passed, a call
    is admitted again."""
    settings = generation_settings(
        max_in_flight=1,  # 2 x sqrt(1): two calls at once from idle ...
        admission_lag_target_seconds=0,
        admission_pace_seconds=2,  # ... then one every 2 s
    )
    service = await start_service(make_app(ScriptedGenerator()), settings)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)

            async def answer() -> str:
                messages = [
                    m async for m in stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))
                ]
                return str(messages[-1].WhichOneof("event"))

            began = time.monotonic()
            assert [await answer(), await answer()] == ["done", "done"]
            before = refused_so_far()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await answer()
            assert time.monotonic() - began < 2.0  # (else the rate's interval had passed: no test)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "0.5 calls a second at most" in (info.value.details() or "")
            assert dict(info.value.trailing_metadata() or ())["retry-after-seconds"] == "0.500"
            assert refused_so_far() == before + 1
            # Health is never paced.
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            await asyncio.sleep(max(0.0, began + 2.1 - time.monotonic()))
            assert await answer() == "done"
    finally:
        await service.stop(grace=1.0)


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


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "generation"}) or 0.0


async def until(condition: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """Wait for `condition` (a generous bound: only a hang fails, never a slow machine)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def adaptive() -> AsyncIterator[tuple[RunningService, ScriptedGenerator]]:
    settings = generation_settings(max_in_flight=100, admission_lag_target_seconds=0.01)
    generator = ScriptedGenerator()
    service = await start_service(make_app(generator), settings)
    yield service, generator
    await service.stop(grace=1.0)


async def test_a_process_whose_loop_falls_behind_refuses_before_the_call_reaches_the_service(
    adaptive: tuple[RunningService, ScriptedGenerator],
) -> None:
    service, generator = adaptive
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        held = [stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="slow 30")) for _ in range(10)]
        # All ten admitted (the ceiling is 100).
        await until(lambda: sample("ragplatform_admission_in_flight") == 10, "ten streams under way")

        # Saturate the process: its event loop (the test's own) runs callbacks that each hold it
        # for 40 ms, as a process that took more work than its CPU finishes does, until the
        # admission limit has fallen below the ten calls in flight.
        async def hog() -> None:
            while sample("ragplatform_admission_limit") >= 10:
                time.sleep(0.04)  # noqa: ASYNC251 (blocking the loop is the point)
                await asyncio.sleep(0)

        await asyncio.wait_for(hog(), timeout=30)
        assert sample("ragplatform_event_loop_lag_seconds_count") > 0

        calls_before = generator.calls
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await first_message(stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi")))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at capacity" in (info.value.details() or "")
        assert dict(info.value.trailing_metadata() or ())["retry-after-seconds"] == "0.500"
        assert generator.calls == calls_before  # refused before the service did any work

        # The overload ends (the streams finish): calls are admitted again.
        for call in held:
            call.cancel()
        await until(lambda: sample("ragplatform_admission_in_flight") == 0, "the streams to end")
        answer = [m async for m in stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))]
        assert answer[-1].WhichOneof("event") == "done"


async def test_a_congested_service_marks_its_answers_and_the_caller_lowers_its_own_limit(
    adaptive: tuple[RunningService, ScriptedGenerator],
) -> None:
    """The service marks each answer it finishes while its standing lag is over
    RAG_ADMISSION_MARK_LAG_SECONDS; a caller (here an admission control standing for the gateway's)
    that reads the mark with `note_congestion` lowers its limit, though nothing was refused."""
    service, _generator = adaptive
    caller = AdmissionInterceptor("gateway", LimitPolicy(ceiling=100, lag_target_seconds=0.01), 1.0)
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)

        async def ask_as_the_caller() -> None:
            context: Any = None  # the caller's scope needs a context only to refuse; it admits
            async with caller.scope("/ragplatform.v1.GatewayService/Ask", context):
                stream = stub.Generate(generation_pb2.GenerateRequest(tenant_id="t", question="hi"))
                assert [m async for m in stream][-1].WhichOneof("event") == "done"
                await note_congestion(stream)

        await ask_as_the_caller()  # a service keeping up: no mark
        assert caller.limit == 100

        # The service's loop falls behind (held for 40 ms at a time) while the caller asks again.
        behind = True

        async def hog() -> None:
            while behind:
                time.sleep(0.04)  # noqa: ASYNC251 (blocking the loop is the point)
                await asyncio.sleep(0)

        hogging = asyncio.create_task(hog())
        try:
            await until(lambda: service_congested(service), "the service to be congested")
            await ask_as_the_caller()
        finally:
            behind = False
            await hogging
        assert caller.limit < 100


def service_congested(service: RunningService) -> bool:
    assert service.admission is not None
    return service.admission.state.congested
