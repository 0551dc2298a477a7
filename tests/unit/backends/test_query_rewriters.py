"""Query rewriters: the one RAG_QUERY_REWRITE picks, and the model-backed one over real HTTP
(the OpenAI-compatible test double in tests/support), including its fallback to the lexical
rewrite when the model fails, is slow or answers instead of rewriting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ragplatform.backends.llms.factory import make_query_rewriter
from ragplatform.backends.llms.openai_query_rewriter import OpenAIQueryRewriter
from ragplatform.backends.llms.query_rewriter import LexicalQueryRewriter, UnchangedQuery
from ragplatform.core.settings import GenerationSettings, SettingsError, load_settings
from ragplatform.domain.models import Role, Turn
from ragplatform.domain.query_rewrite import lexical_rewrite
from tests.support.openai_test_server import OpenAITestServer

HISTORY = [
    Turn(Role.USER, "How do I enable maintenance mode on the Harbor gate controller?"),
    Turn(Role.ASSISTANT, "Hold the MODE key for five seconds [1]."),
]
FOLLOW_UP = "and how do I undo that?"


@pytest.fixture
async def server() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer(slow_seconds=30) as double:
        yield double


def llm_rewriter(server: OpenAITestServer, **overrides: Any) -> OpenAIQueryRewriter:
    values: dict[str, Any] = {
        "llm": "openai",
        "llm_url": server.base_url,
        "llm_model": "test-model",
        "query_rewrite_timeout_seconds": 10.0,  # generous: the machine may be busy
        **overrides,
    }
    rewriter = make_query_rewriter(load_settings(GenerationSettings, **values))
    assert isinstance(rewriter, OpenAIQueryRewriter)
    return rewriter


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"llm": "extractive"}, LexicalQueryRewriter),
        ({"llm": "openai", "llm_url": "http://127.0.0.1:9/v1"}, OpenAIQueryRewriter),
        ({"llm": "openai", "llm_url": "http://127.0.0.1:9/v1", "query_rewrite": "lexical"}, LexicalQueryRewriter),
        ({"llm": "openai", "llm_url": "http://127.0.0.1:9/v1", "query_rewrite": "off"}, UnchangedQuery),
    ],
)
async def test_auto_uses_the_model_when_there_is_one(settings: dict[str, Any], expected: type) -> None:
    rewriter = make_query_rewriter(load_settings(GenerationSettings, **settings))
    assert isinstance(rewriter, expected)
    await rewriter.close()


def test_a_model_rewrite_without_a_model_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match="RAG_QUERY_REWRITE=llm needs a language model"):
        load_settings(GenerationSettings, llm="extractive", query_rewrite="llm")


async def test_the_model_rewrites_with_a_short_bounded_request(server: OpenAITestServer) -> None:
    rewriter = llm_rewriter(server, query_rewrite_max_tokens=48)
    rewritten = await rewriter.rewrite(FOLLOW_UP, HISTORY)
    await rewriter.close()
    assert rewritten.rewriter == "llm"
    # The double's chatty reply, reduced to its query: no label, no quotes, no remark.
    assert rewritten.query == f"{FOLLOW_UP} ({HISTORY[0].content})"
    (request,) = server.requests
    assert request.model == "test-model"
    assert request.stream is False
    assert request.body["max_tokens"] == 48
    assert request.body["temperature"] == 0
    assert HISTORY[0].content in request.body["messages"][1]["content"]


async def test_no_earlier_question_means_no_request(server: OpenAITestServer) -> None:
    rewriter = llm_rewriter(server)
    rewritten = await rewriter.rewrite("  How do I enable maintenance mode? ", [HISTORY[1]])
    await rewriter.close()
    assert (rewritten.query, rewritten.rewriter) == ("How do I enable maintenance mode?", "")
    assert server.requests == []


@pytest.mark.parametrize("model", ["broken-model", "missing-model", "overloaded-model"])
async def test_a_failing_model_falls_back_to_the_lexical_rewrite(server: OpenAITestServer, model: str) -> None:
    rewriter = llm_rewriter(server, llm_model=model)
    rewritten = await rewriter.rewrite(FOLLOW_UP, HISTORY)
    await rewriter.close()
    assert (rewritten.query, rewritten.rewriter) == (lexical_rewrite(FOLLOW_UP, HISTORY), "lexical")
    assert len(server.requests) == 1  # no retries: a rewrite is not worth waiting for


async def test_a_slow_model_is_abandoned_at_the_timeout(server: OpenAITestServer) -> None:
    rewriter = llm_rewriter(server, llm_model="slow-model", query_rewrite_timeout_seconds=0.3)
    started = time.monotonic()
    rewritten = await rewriter.rewrite(FOLLOW_UP, HISTORY)
    elapsed = time.monotonic() - started
    await rewriter.close()
    assert rewritten.rewriter == "lexical"
    assert elapsed < 5.0  # the double would take 30 s


async def test_an_unreachable_endpoint_falls_back() -> None:
    settings = load_settings(GenerationSettings, llm="openai", llm_url="http://127.0.0.1:9/v1")
    rewriter = make_query_rewriter(settings)
    rewritten = await rewriter.rewrite(FOLLOW_UP, HISTORY)
    await rewriter.close()
    assert rewritten.rewriter == "lexical"
    assert "maintenance" in rewritten.query
