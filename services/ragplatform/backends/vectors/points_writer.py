"""Upserts to a Qdrant server as one JSON body over aiohttp: every ingested chunk goes this way
(from the worker, or from the retrieval service for an older worker).

Why not qdrant-client's `upsert` there: for each point it validates a pydantic `PointStruct`
(and its sparse vector), re-encodes the models through `jsonable_encoder`, and sends the body
through httpx's per-request machinery; py-spy put that at over a quarter of the retrieval
service's CPU while a worker drained small documents (bench/ingest_throughput.py). The body is
the same REST request (`PUT /collections/{name}/points?wait=true`, the unnamed dense vector and
the named sparse one per point, the payload of `payload.chunk_payload`), encoded by msgspec. The
rest of the adapter (collections, indexes, searches, deletes) stays on qdrant-client.

Failures: an answer with an HTTP error status raises qdrant-client's `UnexpectedResponse`, as the
client does, so the adapter maps it the same way; connection failures raise aiohttp's errors.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import msgspec
from qdrant_client.http.exceptions import UnexpectedResponse

from ragplatform.backends.vectors.payload import SPARSE_VECTOR, chunk_payload, sparse_document_vector
from ragplatform.core.tracing_state import http_client_span
from ragplatform.domain.models import ChunkPoint

_ENCODER = msgspec.json.Encoder()


def upsert_body(points: list[ChunkPoint]) -> bytes:
    """The JSON body of Qdrant's upsert request for `points` (pure)."""
    entries: list[dict[str, Any]] = []
    for point in points:
        sparse = sparse_document_vector(point.heading, point.text)
        entries.append(
            {
                "id": point.point_id,
                "vector": {
                    "": point.vector,
                    SPARSE_VECTOR: {"indices": sparse.indices, "values": sparse.values},
                },
                "payload": chunk_payload(point),
            }
        )
    return _ENCODER.encode({"points": entries})


class PointsWriter:
    """PUTs points into one collection of the Qdrant server at `url`, with its API key (header
    `api-key`) and a total timeout per request. The aiohttp session is made on first use (it
    belongs to the running loop)."""

    def __init__(self, url: str, collection: str, api_key: str | None, timeout_seconds: float) -> None:
        self._url = f"{url.rstrip('/')}/collections/{collection}/points?wait=true"
        self._headers = {"Content-Type": "application/json", **({"api-key": api_key} if api_key else {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def upsert(self, points: list[ChunkPoint]) -> None:
        """Store `points` and return once Qdrant applied the write (`wait=true`)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = upsert_body(points)
        headers = dict(self._headers)
        # A span of its own in the ingestion job's trace: a worker writes here directly.
        with http_client_span("PUT", self._url, headers) as span:
            async with self._session.put(self._url, data=body, headers=headers) as response:
                content = await response.read()
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status)
                if response.status >= 400:
                    raise UnexpectedResponse(
                        response.status, response.reason or "", content, httpx.Headers(dict(response.headers))
                    )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
