"""Embeddings from any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp, TEI ...),
posted with `openai_http` (aiohttp) rather than the `openai` client: a query's embedding is on
every Search, and the client cost ~8x the CPU of the whole request (see `openai_http`).

Texts go in batches (a few in flight at once), each retried with jittered exponential backoff on
timeouts, connection errors, HTTP 429 and 5xx. Every vector's size is checked against
RAG_EMBEDDING_DIMENSION, because the vector collection is created with that size and a mismatch
would otherwise surface later as an obscure vector-store error.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
from tenacity import wait_random_exponential
from tenacity.wait import wait_base

from ragplatform.backends.embedders.tokens import EstimatedTokenCount
from ragplatform.backends.first_attempt_retries import with_retries
from ragplatform.backends.openai_errors import Endpoint, is_transient, map_openai_error
from ragplatform.backends.openai_http import OpenAIHttp
from ragplatform.core.settings import EmbedderSettings
from ragplatform.domain.errors import FailedPrecondition, RagError

DEFAULT_RETRY_WAIT: wait_base = wait_random_exponential(multiplier=0.25, max=4.0)
DEFAULT_BATCH_SIZE = 64
# A vector this close to unit length is used as it came (float32 on the wire rounds the norm).
UNIT_TOLERANCE = 1e-6


class _Embedding(msgspec.Struct):
    index: int
    embedding: list[float]


class _EmbeddingsResponse(msgspec.Struct):
    """The part of an OpenAI embeddings response used here (other fields are ignored)."""

    data: list[_Embedding]


# Typed decoding with msgspec: ~11 us for a 384-float response where json.loads took ~120 us,
# and a body of another shape is refused in the same pass.
_RESPONSE = msgspec.json.Decoder(_EmbeddingsResponse)


class OpenAIEmbedder(EstimatedTokenCount):
    """`Embedder` over an OpenAI-compatible `/embeddings` endpoint. Callers may rely on: one unit-length vector of
    `dimension` floats per text, in order; `FailedPrecondition` when the endpoint's vectors have
    another size, its key is refused or the model is unknown (the message names the setting);
    `Unavailable` / `ResourceExhausted` when the endpoint is down or rate-limiting after retries."""

    def __init__(
        self,
        settings: EmbedderSettings,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_retries: int = 2,
        retry_wait: wait_base = DEFAULT_RETRY_WAIT,
    ) -> None:
        if not settings.embedding_url and settings.embedding_api_key is None:
            raise FailedPrecondition(
                "RAG_EMBEDDER=openai needs RAG_EMBEDDING_URL (the base URL of an OpenAI-compatible server) "
                "or RAG_EMBEDDING_API_KEY (for api.openai.com). Set one, or use RAG_EMBEDDER=minilm or hashing."
            )
        self._settings = settings
        # Retries are ours, with backoff and a bound.
        self._http = OpenAIHttp(
            settings.embedding_url,
            settings.embedding_api_key,
            settings.embedding_timeout_seconds,
            max_connections=settings.embedding_max_concurrency,
        )
        self._endpoint = Endpoint(
            what="the embeddings endpoint",
            url=settings.embedding_url,
            url_var="RAG_EMBEDDING_URL",
            key_var="RAG_EMBEDDING_API_KEY",
            model_var="RAG_EMBEDDING_MODEL",
            timeout=settings.embedding_timeout_seconds,
        )
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._retry_wait = retry_wait
        # Requests in flight at once, per process: enough to hide the endpoint's latency for many
        # concurrent queries (retrieval embeds one per Ask), few enough not to trip rate limits.
        self._in_flight = asyncio.Semaphore(settings.embedding_max_concurrency)
        # OpenAI's text-embedding-3 models can shorten their vectors to the size we need; other
        # servers reject the parameter, so it is sent only to those models.
        model = settings.embedding_model
        # Every compatible server speaks floats.
        self._body: dict[str, Any] = {"model": model, "encoding_format": "float"}
        if model.startswith("text-embedding-3"):
            self._body["dimensions"] = settings.embedding_dimension

    @property
    def name(self) -> str:
        return f"openai:{self._settings.embedding_model}"

    @property
    def dimension(self) -> int:
        return self._settings.embedding_dimension

    async def embed_query(self, text: str) -> list[float]:
        [vector] = await self._embed_batch([text])
        return vector

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        batches = [texts[i : i + self._batch_size] for i in range(0, len(texts), self._batch_size)]
        results = await asyncio.gather(*(self._embed_batch(batch) for batch in batches))
        return [vector for batch in results for vector in batch]

    async def close(self) -> None:
        await self._http.close()

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        # The API rejects empty strings; a space embeds as "no content", which is what they are.
        inputs = [text if text.strip() else " " for text in texts]
        async with self._in_flight:
            try:
                content = await with_retries(
                    lambda: self._http.post("/embeddings", {**self._body, "input": inputs}),
                    attempts=self._max_retries + 1,
                    wait=self._retry_wait,
                    transient=is_transient,
                )
                data = _RESPONSE.decode(content).data
            except RagError:
                raise
            except msgspec.DecodeError as exc:
                raise FailedPrecondition(
                    "the embeddings endpoint answered with a body that is not an OpenAI embeddings response; "
                    "check RAG_EMBEDDING_URL."
                ) from exc
            except Exception as exc:
                raise map_openai_error(exc, endpoint=self._endpoint, model=self._settings.embedding_model) from exc
        ordered = sorted(data, key=lambda item: item.index)
        if len(ordered) != len(inputs):
            raise FailedPrecondition(
                f"the embeddings endpoint returned {len(ordered)} vectors for {len(inputs)} texts; it is not "
                "OpenAI-compatible enough to use. Check RAG_EMBEDDING_URL."
            )
        return [self._checked(item.embedding) for item in ordered]

    def _checked(self, vector: list[float]) -> list[float]:
        expected = self._settings.embedding_dimension
        if len(vector) != expected:
            raise FailedPrecondition(
                f"the embedding model {self._settings.embedding_model!r} returns {len(vector)}-dimensional "
                f"vectors, but RAG_EMBEDDING_DIMENSION={expected}. Set RAG_EMBEDDING_DIMENSION={len(vector)} "
                "for every service that embeds (a vector collection created with the old size must be "
                "recreated and its documents re-ingested)."
            )
        norm = math.hypot(*vector)
        # Most endpoints return unit vectors already; some (self-hosted models) do not.
        return [x / norm for x in vector] if norm > 0 and abs(norm - 1.0) > UNIT_TOLERANCE else vector
