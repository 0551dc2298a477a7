"""The OpenAI-compatible embedder against the OpenAI-compatible TEST DOUBLE server
(tests/support/openai_test_server.py), which stands in for a remote embeddings endpoint."""

from __future__ import annotations

import base64
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from tenacity import wait_none

from ragplatform.backends.embedders.hashing import hash_embed
from ragplatform.backends.embedders.openai_compatible import OpenAIEmbedder
from ragplatform.backends.embedders.tokens import estimate_tokens
from ragplatform.core.settings import EmbedderSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, ResourceExhausted, Unavailable
from tests.support.openai_test_server import OpenAITestServer


@pytest.fixture
async def server() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer(dimension=64) as double:
        yield double


def make(server: OpenAITestServer, batch_size: int = 64, **overrides: Any) -> OpenAIEmbedder:
    values: dict[str, Any] = {
        "embedder": "openai",
        "embedding_url": server.base_url,
        "embedding_model": "test-embedder",
        "embedding_dimension": 64,
        "embedding_timeout_seconds": 0.5,
    }
    values.update(overrides)
    return OpenAIEmbedder(load_settings(EmbedderSettings, **values), batch_size=batch_size, retry_wait=wait_none())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_unit_length_ordered_and_meaningful(server: OpenAITestServer) -> None:
    embedder = make(server)
    texts = ["The Zephyr-9 pump reaches 42 bar.", "Zephyr-9 pump pressure", "Ferries leave Pier 7 at night."]
    vectors = await embedder.embed_documents(texts)
    await embedder.close()
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-6) for v in vectors)
    # What the endpoint computed for each text, in the order asked.
    assert vectors == [pytest.approx(hash_embed(t, 64)) for t in texts]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[2], vectors[1])
    assert embedder.dimension == 64
    assert embedder.name == "openai:test-embedder"


async def test_texts_are_sent_in_batches(server: OpenAITestServer) -> None:
    embedder = make(server, batch_size=4)
    texts = [f"document number {i}" for i in range(10)]
    vectors = await embedder.embed_documents(texts)
    batches = [r.body["input"] for r in server.requests]
    assert sorted(len(b) for b in batches) == [2, 4, 4]
    assert sorted(t for b in batches for t in b) == sorted(texts)
    assert vectors[7] == pytest.approx(await embedder.embed_query("document number 7"))


async def test_nothing_to_embed_sends_nothing(server: OpenAITestServer) -> None:
    assert await make(server).embed_documents([]) == []
    assert server.requests == []


async def test_empty_text_still_gets_a_vector(server: OpenAITestServer) -> None:
    [vector] = await make(server).embed_documents([""])
    assert len(vector) == 64


async def test_dimension_mismatch_names_the_setting_and_the_right_value(server: OpenAITestServer) -> None:
    server.dimension = 128
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDING_DIMENSION=128") as caught:
        await make(server).embed_query("hello")
    assert "RAG_EMBEDDING_DIMENSION=64" in caught.value.message


async def test_text_embedding_3_models_are_asked_for_the_configured_size(server: OpenAITestServer) -> None:
    server.dimension = 1536
    vector = await make(server, embedding_model="text-embedding-3-small").embed_query("hello")
    assert len(vector) == 64
    assert server.requests[-1].body["dimensions"] == 64
    with pytest.raises(FailedPrecondition, match="returns 1536-dimensional vectors"):
        await make(server).embed_query("hello")
    assert "dimensions" not in server.requests[-1].body, "other servers reject the parameter"


async def test_refused_key_is_a_clear_error(server: OpenAITestServer) -> None:
    server.api_key = "good"
    assert len(await make(server, embedding_api_key="good").embed_query("x")) == 64
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDING_API_KEY"):
        await make(server, embedding_api_key="bad").embed_query("x")


async def test_unknown_model_names_the_setting(server: OpenAITestServer) -> None:
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDING_MODEL"):
        await make(server, embedding_model="missing-model").embed_query("x")


async def test_timeouts_are_retried_then_unavailable(server: OpenAITestServer) -> None:
    with pytest.raises(Unavailable, match=r"did not answer within 0\.2 s"):
        await make(server, embedding_model="slow-model", embedding_timeout_seconds=0.2).embed_query("x")
    assert len(server.requests_for("slow-model")) == 3


async def test_transient_failure_is_retried(server: OpenAITestServer) -> None:
    server.flaky_failures = 2
    assert len(await make(server, embedding_model="flaky-model").embed_query("x")) == 64
    assert len(server.requests_for("flaky-model")) == 3


async def test_rate_limit_is_retried_then_resource_exhausted_with_the_endpoints_hint(server: OpenAITestServer) -> None:
    with pytest.raises(ResourceExhausted, match="HTTP 429: Rate limit reached") as caught:
        await make(server, embedding_model="overloaded-model").embed_query("x")
    assert caught.value.retry_after_seconds == 1.0  # the endpoint's Retry-After header
    assert len(server.requests_for("overloaded-model")) == 3


async def test_server_errors_are_retried_then_unavailable(server: OpenAITestServer) -> None:
    with pytest.raises(Unavailable, match="HTTP 500"):
        await make(server, embedding_model="broken-model").embed_query("x")
    assert len(server.requests_for("broken-model")) == 3


async def test_unreachable_endpoint_names_the_setting() -> None:
    async with OpenAITestServer() as stopped:
        url = stopped.base_url
    embedder = make(stopped, embedding_url=url)
    with pytest.raises(Unavailable, match=r"cannot reach the embeddings endpoint .* check RAG_EMBEDDING_URL"):
        await embedder.embed_query("x")
    await embedder.close()


async def test_credentials_in_the_url_are_sent_as_basic_auth_and_connections_are_reused(
    server: OpenAITestServer,
) -> None:
    url = server.base_url.replace("http://", "http://embed:s%40cret@")
    embedder = make(server, embedding_url=url, embedding_api_key="ignored-when-the-url-has-credentials")
    await embedder.embed_query("one")
    await embedder.embed_query("two")
    await embedder.close()
    first, second = server.requests
    assert first.authorization == "Basic " + base64.b64encode(b"embed:s@cret").decode()
    assert first.client_port == second.client_port, "one kept-alive connection"


@pytest.mark.parametrize(
    "body",
    [b'{"data": [{"index": 0}]}', b'{"object": "list"}', b'{"data": [{"index": 0, "embedding": "AAAA"}]}', b"<html>"],
)
async def test_a_body_that_is_not_an_embeddings_response_names_the_setting(body: bytes) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/embeddings", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        embedder = OpenAIEmbedder(
            load_settings(
                EmbedderSettings, embedder="openai", embedding_url=f"http://127.0.0.1:{port}/v1", embedding_dimension=64
            )
        )
        with pytest.raises(FailedPrecondition, match="not an OpenAI embeddings response; check RAG_EMBEDDING_URL"):
            await embedder.embed_query("x")
        await embedder.close()
    finally:
        await runner.cleanup()


async def test_count_tokens_is_the_shared_estimate(server: OpenAITestServer) -> None:
    text = "The Zephyr-9 pump's maximum pressure is 42 bar."
    assert make(server).count_tokens(text) == estimate_tokens(text)


def test_needs_a_url_or_a_key() -> None:
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDING_URL"):
        OpenAIEmbedder(load_settings(EmbedderSettings, embedder="openai", embedding_url="", embedding_api_key=None))
