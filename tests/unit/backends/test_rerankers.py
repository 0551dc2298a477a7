"""Rerankers over real HTTP. No cross-encoder can run here (none ships its weights in a Python
package), so the remote adapter talks to a TEST DOUBLE of the TEI/Infinity `/rerank` API started
in the test (aiohttp on a loopback port; it scores by shared words, it is not a model), and the
LLM reranker to the OpenAI-compatible TEST DOUBLE (tests/support/openai_test_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.rerankers.factory import make_reranker
from ragplatform.backends.rerankers.llm import LlmReranker, apply_ranking, parse_ranking, ranking_prompt
from ragplatform.backends.rerankers.remote import RemoteReranker
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.core.settings import RetrievalSettings, SettingsError, load_settings
from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import ChunkPoint, ScoredPassage
from ragplatform.domain.text_matching import content_words
from ragplatform.retrieval.service import RetrievalPolicy, RetrievalService
from tests.support.openai_test_server import OpenAITestServer

PASSAGES = [
    ScoredPassage("c1", "d1", "tar.1.txt", 0, "tar saves many files together into a single archive.", 0.9),
    ScoredPassage("c2", "d2", "du.1.txt", 0, "du estimates file space usage of each directory.", 0.8),
    ScoredPassage("c3", "d3", "gzip.1.txt", 0, "gzip compresses files; use --keep to keep the input files.", 0.7),
]


class RerankDouble:
    """TEST DOUBLE of a `/rerank` server (TEI's answer shape, or Infinity's with `infinity=True`)."""

    def __init__(self, *, infinity: bool = False, status: int = 200) -> None:
        self.infinity = infinity
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(request.headers.get("Authorization", ""))
        if self.status != 200:
            return web.json_response({"error": "model overloaded"}, status=self.status)
        query = content_words(body["query"])
        scored = [{"index": i, "score": float(len(query & content_words(t)))} for i, t in enumerate(body["texts"])]
        scored.sort(key=lambda item: -float(item["score"]))  # type: ignore[arg-type]
        if self.infinity:
            return web.json_response(
                {"results": [{"index": s["index"], "relevance_score": s["score"]} for s in scored]}
            )
        return web.json_response(scored)

    async def __aenter__(self) -> RerankDouble:
        app = web.Application()
        app.router.add_post("/rerank", self._rerank)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.mark.parametrize("infinity", [False, True])
async def test_remote_reranker_reorders_by_the_servers_scores(infinity: bool) -> None:
    async with RerankDouble(infinity=infinity) as server:
        reranker = RemoteReranker(server.url + "/", model="bge-reranker", api_key=SecretStr("k"))
        try:
            ranked = await reranker.rerank("keep the input files when compressing", PASSAGES)
        finally:
            await reranker.close()
    assert [p.filename for p in ranked] == ["gzip.1.txt", "tar.1.txt", "du.1.txt"]
    assert ranked[0].score > ranked[1].score
    assert server.bodies == [
        {"query": "keep the input files when compressing", "texts": [p.text for p in PASSAGES], "model": "bge-reranker"}
    ]
    assert server.headers == ["Bearer k"]


async def test_remote_reranker_errors_say_what_to_check() -> None:
    async with RerankDouble(status=503) as server:
        reranker = RemoteReranker(server.url)
        with pytest.raises(Unavailable, match="RAG_RERANK_URL"):
            await reranker.rerank("q", PASSAGES)
        await reranker.close()
    closed = RemoteReranker(server.url, timeout=1)  # the server is gone: connection refused
    with pytest.raises(Unavailable, match="RAG_RERANK_URL"):
        await closed.rerank("q", PASSAGES)
    await closed.close()


def test_llm_ranking_prompt_and_parsing() -> None:
    prompt = ranking_prompt("how to keep files", PASSAGES)
    assert prompt.startswith("[1] tar.1.txt: tar saves")
    assert prompt.endswith("Question: how to keep files")
    assert parse_ranking("[3] [1] then [3] again, [9] and [0]", 3) == [2, 0]
    assert parse_ranking("I cannot tell.", 3) == []
    ranked = apply_ranking(PASSAGES, [2])
    assert [p.filename for p in ranked] == ["gzip.1.txt", "tar.1.txt", "du.1.txt"]
    assert [p.score for p in ranked] == [1.0, 0.5, pytest.approx(1 / 3)]


async def test_llm_reranker_puts_the_models_choice_first(openai_server: OpenAITestServer) -> None:
    # The double quotes the passage sharing most words with the question, citing its [n].
    reranker = LlmReranker(openai_server.base_url, "test-model", None, timeout=5)
    try:
        ranked = await reranker.rerank("how do I keep the input files with gzip?", PASSAGES)
    finally:
        await reranker.close()
    assert [p.filename for p in ranked] == ["gzip.1.txt", "tar.1.txt", "du.1.txt"]
    [request] = openai_server.requests_for("test-model")
    assert "[3] gzip.1.txt: gzip compresses" in str(request.body["messages"][-1]["content"])


async def test_llm_reranker_failure_is_unavailable(openai_server: OpenAITestServer) -> None:
    reranker = LlmReranker(openai_server.base_url, "broken-model", None, timeout=5)
    with pytest.raises(Unavailable, match="RAG_RERANK"):
        await reranker.rerank("q", PASSAGES)
    await reranker.close()


def test_rerank_settings_are_checked_and_off_by_default() -> None:
    assert make_reranker(load_settings(RetrievalSettings)) is None
    with pytest.raises(SettingsError, match="RAG_RERANK_URL"):
        load_settings(RetrievalSettings, rerank="remote")
    with pytest.raises(SettingsError, match="RAG_RERANK_MODEL"):
        load_settings(RetrievalSettings, rerank="llm")
    assert isinstance(
        make_reranker(load_settings(RetrievalSettings, rerank="remote", rerank_url="http://r")), RemoteReranker
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    embedder = HashingEmbedder(64)
    vectors = EdgeVectorStore(tmp_path / "v")
    await vectors.open(64)
    texts = [p.text for p in PASSAGES] + [f"filler text number {i} about nothing" for i in range(20)]
    embedded = await embedder.embed_documents(texts)
    await vectors.upsert(
        [ChunkPoint("t", f"d{i}", f"f{i}.txt", 0, t, v) for i, (t, v) in enumerate(zip(texts, embedded, strict=True))]
    )
    yield vectors
    await vectors.close()


async def test_the_service_reranks_its_candidates_and_falls_back_when_the_reranker_is_down(
    store: EdgeVectorStore,
) -> None:
    async with RerankDouble() as server:
        reranker = RemoteReranker(server.url)
        service = RetrievalService(HashingEmbedder(64), store, 50, RetrievalPolicy(rerank_candidates=10), reranker)
        hits = await service.search("t", "keep input files compress", 2, {}, 0.0)
        assert len(server.bodies[0]["texts"]) == 10  # the candidate depth, not top_k
        assert [h.text for h in hits][:1] == [PASSAGES[2].text]
        assert len(hits) == 2
        server.status = 500
        fallback = await service.search("t", "keep input files compress", 2, {}, 0.0)
        assert len(fallback) == 2  # first-stage order: the search still answers
        await reranker.close()
