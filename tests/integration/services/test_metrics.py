"""The metrics SREs alert on move when the platform works: RED per method, job outcomes, wait
and duration, LLM latency and tokens per model, answer-cache lookups. The platform runs in this
process, so the samples are read from the process's Prometheus registry (before/after deltas,
as other tests in the process also count)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from ragplatform.client import GatewayClient
from tests.integration.services.conftest import ServiceStarter, start_platform
from tests.support.openai_test_server import OpenAITestServer


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _sre_samples() -> dict[str, float]:
    """The samples the test below moves, by a short name."""
    ask_ok = {"method": "/ragplatform.v1.GatewayService/Ask", "code": "OK"}
    get_job_not_found = {"method": "/ragplatform.v1.GatewayService/GetJob", "code": "NOT_FOUND"}
    return {
        "asks": sample("ragplatform_grpc_server_handled_total", **ask_ok),
        "ask_latency": sample("ragplatform_grpc_server_handling_seconds_count", method=ask_ok["method"]),
        "not_found": sample("ragplatform_grpc_server_handled_total", **get_job_not_found),
        "wait": sample("ragplatform_ingestion_job_wait_seconds_count"),
        "job": sample("ragplatform_ingestion_job_seconds_count", outcome="succeeded"),
        "jobs": sample("ragplatform_ingestion_jobs_total", outcome="succeeded"),
        "llm": sample("ragplatform_llm_request_seconds_count", model="metrics-model", outcome="ok"),
        "ttft": sample("ragplatform_llm_time_to_first_token_seconds_count", model="metrics-model"),
        "tokens": sample("ragplatform_llm_tokens_total", tenant="acme", model="metrics-model", kind="completion"),
        "hit": sample("ragplatform_answer_cache_total", result="hit"),
        "miss": sample("ragplatform_answer_cache_total", result="miss"),
    }


@pytest_asyncio.fixture(loop_scope="module")
async def openai_double() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer() as double:
        yield double


@pytest.mark.asyncio(loop_scope="module")
async def test_an_upload_and_two_asks_move_the_sre_metrics(
    starter: ServiceStarter, openai_double: OpenAITestServer
) -> None:
    platform = await start_platform(
        starter, llm="openai", llm_url=openai_double.base_url, llm_model="metrics-model", answer_cache_ttl_seconds=600
    )
    key, _ = await platform.create_api_key("acme")
    before = _sre_samples()
    async with GatewayClient(platform.gateway.address, key) as client:
        reply = await client.ingest_bytes("lamp.txt", b"The Quokka lamp glows amber in the dark.")
        for _ in range(200):
            if (await client.get_job(reply.job.job_id)).chunks_done:
                break
            await asyncio.sleep(0.05)
        for _ in range(2):  # the second is answered from the cache
            [m async for m in client.ask("What colour does the Quokka lamp glow?")]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.get_job("no-such-job")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

    expected = {
        "asks": 2,
        "ask_latency": 2,
        "not_found": 1,
        "wait": 1,
        "job": 1,
        "jobs": 1,
        "llm": 1,
        "ttft": 1,
        "hit": 1,
        "miss": 1,
    }

    def deltas() -> dict[str, float]:
        return {key: value - before[key] for key, value in _sre_samples().items()}

    # A server counts a call just after it has sent the call's status, and the worker records a
    # job's outcome after its progress: the last counters can trail the client by a moment.
    for _ in range(100):
        moved = deltas()
        if {key: moved[key] for key in expected} == expected and moved["tokens"] > 0:
            break
        await asyncio.sleep(0.05)
    assert {key: moved[key] for key in expected} == expected
    assert moved["tokens"] > 0
