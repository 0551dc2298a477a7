"""The gateway judges the platform's share of an Ask against its latency budget: the generation
service reports the model's time for each answer, and the gateway's admission control records the
answer with it — the model's time apart from the platform's (core/latency_budget.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from ragplatform.client import GatewayClient
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from tests.integration.services.conftest import ServiceStarter, start_platform
from tests.support.openai_test_server import OpenAITestServer

MODEL_LATENCY = 0.4


@pytest_asyncio.fixture(loop_scope="module")
async def slow_model() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer(latency=MODEL_LATENCY, token_delay=0.01) as double:
        yield double


@pytest.mark.asyncio(loop_scope="module")
async def test_an_answer_reaches_admission_control_with_the_models_time_apart(
    starter: ServiceStarter, slow_model: OpenAITestServer
) -> None:
    address, key, admission = await platform_with(starter, slow_model)
    shares_before = share_count()
    async with GatewayClient(address, key) as client:
        messages = [m async for m in client.ask("What colour does the Quokka lamp glow?")]

    done = messages[-1].done
    [answer] = admission.state.answers
    # The model's time as generation measured it: the double's latency and its streamed tokens.
    assert answer.model_seconds >= MODEL_LATENCY
    assert answer.done_at - answer.admitted_at >= answer.model_seconds
    # The platform's share is what is left (auth, retrieval, storing the turns): far under the model's.
    assert answer.share < MODEL_LATENCY
    assert done.usage.completion_tokens > 0
    # ... and SREs see it: the gateway's histogram of the platform's share counted the answer.
    assert share_count() == shares_before + 1


async def platform_with(starter: ServiceStarter, model: OpenAITestServer) -> tuple[str, str, AdmissionInterceptor]:
    """A platform answering with `model`: the gateway's address, an API key, its admission control."""
    platform = await start_platform(
        starter,
        llm="openai",
        llm_url=model.base_url,
        answer_cache_ttl_seconds=0,
        admission_latency_target_seconds=0.25,  # judged (0.1 s by default; any value keeps the answers)
    )
    key, _ = await platform.create_api_key("acme")
    admission = platform.gateway.admission
    assert admission is not None
    return platform.gateway.address, key, admission


def share_count() -> float:
    return REGISTRY.get_sample_value("ragplatform_ask_platform_seconds_count", {"service": "gateway"}) or 0.0


@pytest.mark.asyncio(loop_scope="module")
async def test_a_follow_ups_rewrite_by_the_model_is_the_models_time_too(
    starter: ServiceStarter, slow_model: OpenAITestServer
) -> None:
    # A follow-up waits for the model twice: the query rewrite, then the answer. Counted as the
    # platform's share, the rewrite's wait alone would overrun a 250 ms budget and cut the limit.
    address, key, admission = await platform_with(starter, slow_model)
    async with GatewayClient(address, key) as client:
        first = [m async for m in client.ask("What colour does the Quokka lamp glow?")]
        conversation = first[-1].done.conversation_id
        follow_up = [m async for m in client.ask("And how bright is it?", conversation_id=conversation)]

    assert follow_up[-1].done.query_rewriter == "llm"
    _, answer = admission.state.answers
    assert answer.model_seconds >= 2 * MODEL_LATENCY  # the rewrite's wait and the answer's
    assert answer.done_at - answer.admitted_at >= answer.model_seconds
    assert answer.share < MODEL_LATENCY
