"""The OpenAI-compatible answer generator against the OpenAI-compatible TEST DOUBLE server
(tests/support/openai_test_server.py): real HTTP, real streaming, real timeouts and errors. The
double stands in for a remote model endpoint, which cannot run here."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tenacity import wait_none

from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent, AnswerRequest
from ragplatform.backends.llms.openai_compatible import OpenAIAnswerGenerator
from ragplatform.core.settings import GenerationSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, ResourceExhausted, Unavailable
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.prompts import NO_ANSWER
from tests.support.openai_test_server import OpenAITestServer

PASSAGES = [
    ScoredPassage("c-ferry", "d-ferry", "ferry.txt", 0, "The last night ferry leaves Pier 7 at 23:40.", 0.9),
    ScoredPassage("c-pump", "d-pump", "zephyr.md", 3, "The Zephyr-9 pump's maximum pressure is 42 bar.", 0.8),
]
QUESTION = "What is the maximum pressure of the Zephyr-9 pump?"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer() as double:
        yield double


def make(server: OpenAITestServer, clock: Clock | None = None, **overrides: Any) -> OpenAIAnswerGenerator:
    values: dict[str, Any] = {
        "llm": "openai",
        "llm_url": server.base_url,
        "llm_model": "test-model",
        "llm_timeout_seconds": 0.5,
        "llm_max_retries": 2,
    }
    values.update(overrides)
    return OpenAIAnswerGenerator(
        load_settings(GenerationSettings, **values),
        retry_wait=wait_none(),
        breaker_failures=3,
        breaker_cooldown_seconds=30,
        clock=clock or Clock(),
    )


async def collect(generator: OpenAIAnswerGenerator, **request: Any) -> tuple[str, AnswerDone, int]:
    events: list[AnswerEvent] = []
    fields: dict[str, Any] = {"tenant_id": "t1", "question": QUESTION, "passages": PASSAGES}
    fields.update(request)
    async for event in generator.generate(AnswerRequest(**fields)):
        events.append(event)
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    done = events[-1]
    assert isinstance(done, AnswerDone)
    assert sum(isinstance(e, AnswerDone) for e in events) == 1
    return "".join(d.text for d in deltas), done, len(deltas)


async def test_streams_a_cited_answer_with_usage(server: OpenAITestServer) -> None:
    server.token_delay = 0.01  # tokens a model writes one by one are passed on one by one
    generator = make(server)
    text, done, delta_count = await collect(generator, max_tokens=77)
    await generator.close()
    assert "42 bar [2]" in text
    assert delta_count > 3
    assert [(c.index, c.filename, c.chunk_id) for c in done.citations] == [(2, "zephyr.md", "c-pump")]
    assert "42 bar" in done.citations[0].quote
    assert done.model == "test-model"
    assert not done.extractive
    assert done.finish_reason == "stop"
    assert done.usage.completion_tokens == len(text.split())  # the endpoint's own usage report
    [sent] = server.requests
    assert sent.stream
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["max_tokens"] == 77
    assert "[2] zephyr.md:" in sent.body["messages"][-1]["content"]


async def test_tokens_that_arrive_together_are_passed_on_together(server: OpenAITestServer) -> None:
    """The double writes a whole answer at once (no token delay): it comes in a read or two, not
    as one delta per token."""
    generator = make(server)
    text, _, delta_count = await collect(generator)
    await generator.close()
    assert "42 bar [2]" in text
    assert delta_count < len(text.split())


async def test_consecutive_answers_reuse_one_connection(server: OpenAITestServer) -> None:
    """The stream is read to its end, so the pooled connection is reused, not reconnected."""
    generator = make(server)
    for _ in range(3):
        await collect(generator, question=QUESTION, passages=PASSAGES)
    await generator.close()
    ports = {request.client_port for request in server.requests_for("test-model")}
    assert len(server.requests_for("test-model")) == 3
    assert len(ports) == 1
    assert 0 not in ports


async def test_usage_is_counted_in_words_when_the_server_reports_none(server: OpenAITestServer) -> None:
    text, done, _ = await collect(make(server, llm_model="no-usage-model"))
    assert "42 bar" in text
    assert done.usage.completion_tokens == len(text.split())
    assert done.usage.prompt_tokens == len(QUESTION.split()) + sum(len(p.text.split()) for p in PASSAGES)


async def test_without_passages_the_model_says_so(server: OpenAITestServer) -> None:
    text, done, _ = await collect(make(server), passages=[])
    assert text == NO_ANSWER
    assert done.citations == []


async def test_api_key_is_sent_and_a_wrong_one_is_a_clear_error(server: OpenAITestServer) -> None:
    server.api_key = "right-key"
    text, _, _ = await collect(make(server, llm_api_key="right-key"))
    assert "42 bar" in text
    assert server.requests[-1].authorization == "Bearer right-key"

    with pytest.raises(FailedPrecondition, match="RAG_LLM_API_KEY"):
        await collect(make(server, llm_api_key="wrong-key", llm_fallback_model="other-model"))
    assert server.requests_for("other-model") == [], "the fallback shares the key: not tried"


async def test_timeout_is_retried_then_the_fallback_answers(server: OpenAITestServer) -> None:
    generator = make(server, llm_model="slow-model", llm_fallback_model="test-model", llm_timeout_seconds=0.2)
    text, done, _ = await collect(generator, max_tokens=0)
    assert "42 bar" in text
    assert done.model == "test-model"
    assert len(server.requests_for("slow-model")) == 3  # 1 try + 2 retries


async def test_timeout_without_fallback_is_unavailable(server: OpenAITestServer) -> None:
    generator = make(server, llm_model="slow-model", llm_timeout_seconds=0.2, llm_max_retries=0)
    with pytest.raises(Unavailable, match=r"did not answer within 0.2 s"):
        await collect(generator)


async def test_server_errors_are_retried_a_bounded_number_of_times(server: OpenAITestServer) -> None:
    with pytest.raises(Unavailable, match="HTTP 500"):
        await collect(make(server, llm_model="broken-model", llm_max_retries=2))
    assert len(server.requests_for("broken-model")) == 3


async def test_a_transient_failure_is_retried_and_then_succeeds(server: OpenAITestServer) -> None:
    server.flaky_failures = 1
    text, done, _ = await collect(make(server, llm_model="flaky-model"))
    assert "42 bar" in text
    assert done.model == "flaky-model"
    assert len(server.requests_for("flaky-model")) == 2


async def test_rate_limit_is_resource_exhausted_with_retry_after(server: OpenAITestServer) -> None:
    with pytest.raises(ResourceExhausted) as caught:
        await collect(make(server, llm_model="overloaded-model", llm_max_retries=1))
    assert caught.value.retry_after_seconds == 1.0
    assert "429" in caught.value.message


async def test_unknown_model_names_the_setting_and_falls_back(server: OpenAITestServer) -> None:
    with pytest.raises(FailedPrecondition, match="RAG_LLM_MODEL"):
        await collect(make(server, llm_model="missing-model"))
    assert len(server.requests_for("missing-model")) == 1, "a 404 is not retried"

    _, done, _ = await collect(make(server, llm_model="missing-model", llm_fallback_model="test-model"))
    assert done.model == "test-model"


async def test_both_models_failing_reports_both(server: OpenAITestServer) -> None:
    generator = make(server, llm_model="broken-model", llm_fallback_model="missing-model", llm_max_retries=0)
    with pytest.raises(Unavailable) as caught:
        await collect(generator)
    assert "'broken-model'" in caught.value.message
    assert "'missing-model'" in caught.value.message


async def test_failure_after_the_first_token_is_reported_not_retried(server: OpenAITestServer) -> None:
    generator = make(server, llm_model="midstream-fail-model", llm_fallback_model="test-model")
    received: list[str] = []

    async def read_all() -> None:
        async for event in generator.generate(AnswerRequest("t1", QUESTION, PASSAGES)):
            if isinstance(event, AnswerDelta):
                received.append(event.text)

    with pytest.raises(Unavailable, match="stopped part-way"):
        await read_all()
    assert received, "the first tokens reached the caller"
    assert len(server.requests_for("midstream-fail-model")) == 1
    assert server.requests_for("test-model") == [], "no fallback once text was streamed"


async def test_circuit_breaker_fails_fast_then_lets_a_trial_through(server: OpenAITestServer) -> None:
    clock = Clock()
    generator = make(server, clock, llm_model="broken-model", llm_max_retries=0)
    for _ in range(3):
        with pytest.raises(Unavailable, match="HTTP 500"):
            await collect(generator)
    assert len(server.requests_for("broken-model")) == 3

    with pytest.raises(Unavailable, match="circuit breaker"):
        await collect(generator)
    assert len(server.requests_for("broken-model")) == 3, "open breaker: the endpoint is not called"

    clock.now += 31
    with pytest.raises(Unavailable, match="HTTP 500"):
        await collect(generator)
    assert len(server.requests_for("broken-model")) == 4, "after the cool-down one trial goes through"


async def test_open_breaker_on_primary_goes_straight_to_fallback(server: OpenAITestServer) -> None:
    generator = make(server, llm_model="broken-model", llm_fallback_model="test-model", llm_max_retries=0)
    for _ in range(4):
        _, done, _ = await collect(generator)
        assert done.model == "test-model"
    assert len(server.requests_for("broken-model")) == 3
    assert len(server.requests_for("test-model")) == 4


async def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = OpenAIAnswerGenerator(
        load_settings(GenerationSettings, llm="openai", llm_url=f"http://127.0.0.1:{port}/v1", llm_max_retries=1),
        retry_wait=wait_none(),
    )
    with pytest.raises(Unavailable, match="cannot reach"):
        await collect(generator)


async def test_a_caller_that_stops_reading_does_not_trip_the_breaker(server: OpenAITestServer) -> None:
    generator = make(server)
    stream = generator.generate(AnswerRequest("t1", QUESTION, PASSAGES))
    first = await stream.__anext__()
    assert isinstance(first, AnswerDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    assert generator.breaker("test-model").allow()
    _, done, _ = await collect(generator)
    assert done.citations
