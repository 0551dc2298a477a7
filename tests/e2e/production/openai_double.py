"""TEST DOUBLE of a remote OpenAI-compatible endpoint for the production-shape tests: the shared
`OpenAITestServer` plus the faults these tests need, run on its own thread so that the platform's
processes reach it over real HTTP while a test changes its behaviour between steps.

Additions over the shared double (read per request, so a test may change them while it runs):

* `poison_marker`: an embeddings request with any input containing this text gets HTTP 503, as
  a self-hosted embedding server that crashes on one document would answer. Every retry fails
  the same way, so a document containing the marker is a real poison message; clearing the
  marker is "fixing the cause".
* `embedding_latency`: seconds each embeddings request waits (a job takes measurable time, so a
  worker can be killed in the middle of one).
* `chat_latency`: seconds each chat request waits before answering, for every model (an
  endpoint that is slow for all models, fallback included).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from tests.support.openai_test_server import OpenAITestServer


@dataclass
class FaultyOpenAIDouble(OpenAITestServer):
    poison_marker: str = ""
    embedding_latency: float = 0.0
    chat_latency: float = 0.0

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()  # aiohttp caches the body: the parent reads it again
        texts = body.get("input") if isinstance(body, dict) else None
        texts = [texts] if isinstance(texts, str) else texts or []
        if self.poison_marker and any(self.poison_marker in str(t) for t in texts):
            return web.json_response(
                {"error": {"message": "the embedding worker crashed", "type": "server_error", "code": None}},
                status=503,
            )
        if self.embedding_latency:
            await asyncio.sleep(self.embedding_latency)
        return await super()._embeddings(request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.chat_latency:
            await asyncio.sleep(self.chat_latency)
        return await super()._chat(request)

    def embedding_inputs(self) -> list[str]:
        """Every text the double was asked to embed so far."""
        out: list[str] = []
        for r in list(self.requests):
            if r.path.endswith("/embeddings"):
                raw = r.body.get("input")
                out.extend([raw] if isinstance(raw, str) else list(raw or []))
        return out
