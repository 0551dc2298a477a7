"""TEST DOUBLE of a Qdrant server: the part of Qdrant's REST API that `QdrantServerStore` uses,
served over real HTTP and backed by qdrant-client's local mode (Qdrant's own Python
implementation of the same operations, in memory).

Why: no Qdrant server binary can be installed here, and `QdrantServerStore` takes only an
http(s) URL (RAG_VECTOR_URL) — local mode is reachable only by injecting a client, which a
separate process configured through environment variables cannot do. With this double the
retrieval process runs the real production adapter, over HTTP, against Qdrant's semantics; what
it does not cover is the real server's storage engine and clustering.

Request bodies are parsed into qdrant-client's REST models and answers are those models
serialised, so a shape the adapter sends that Qdrant would not accept fails here too (HTTP 400).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from pydantic import BaseModel, ValidationError
from qdrant_client import AsyncQdrantClient, models

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _json(request: web.Request) -> Any:
    """The request's JSON body, decoded by msgspec: the stdlib decoder's float parsing was ~45 % of
    this double's CPU under a worker's upserts (384 floats a point), CPU the benchmarks' harness
    shares with PostgreSQL. An invalid body is a 400, as Qdrant answers it."""
    try:
        return msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=f"Format error in JSON body: {exc}") from exc


def _ok(result: Any) -> web.Response:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", exclude_none=True)
    return web.json_response({"result": result, "status": "ok", "time": 0.0})


def _completed() -> web.Response:
    return _ok({"operation_id": 0, "status": "completed"})


class QdrantRestDouble:
    def __init__(self, max_body_bytes: int = 32 * 1024 * 1024) -> None:
        self.local = AsyncQdrantClient(location=":memory:")
        self.max_body_bytes = max_body_bytes
        self.host = "127.0.0.1"
        self.port = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Qdrant takes request bodies up to 32 MB by default (service.max_request_size_mb);
        # aiohttp's own default of 1 MiB refused retrieval's batched upserts (256 points).
        app = web.Application(middlewares=[self._errors], client_max_size=self.max_body_bytes)
        base = "/collections/{name}"
        app.router.add_get(base + "/exists", self._exists)
        app.router.add_get(base, self._get)
        app.router.add_put(base, self._create)
        app.router.add_patch(base, self._update)
        app.router.add_put(base + "/index", self._index)
        app.router.add_put(base + "/points", self._upsert)
        app.router.add_post(base + "/points/query", self._query)
        app.router.add_post(base + "/points/query/batch", self._query_batch)
        app.router.add_post(base + "/points/delete", self._delete)
        app.router.add_post(base + "/points/count", self._count)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def count_points(self, collection: str, tenant_id: str) -> int:
        """Points of `tenant_id` in `collection` (callable from any thread but the double's)."""
        assert self._loop is not None, "start() the double first"
        tenant = models.Filter(must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))])
        counting = self.local.count(collection, count_filter=tenant, exact=True)
        return asyncio.run_coroutine_threadsafe(counting, self._loop).result(timeout=30).count

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.local.close()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
            return await handler(request)
        except ValidationError as exc:
            return web.json_response({"status": {"error": f"Format error in JSON body: {exc}"}}, status=400)
        except ValueError as exc:  # local mode's "not found" / "already exists"
            status = 404 if "not found" in str(exc).lower() else 409
            return web.json_response({"status": {"error": str(exc)}, "time": 0.0}, status=status)

    async def _exists(self, request: web.Request) -> web.Response:
        return _ok({"exists": await self.local.collection_exists(request.match_info["name"])})

    async def _get(self, request: web.Request) -> web.Response:
        return _ok(await self.local.get_collection(request.match_info["name"]))

    async def _create(self, request: web.Request) -> web.Response:
        body = models.CreateCollection.model_validate(await _json(request))
        name = request.match_info["name"]
        if await self.local.collection_exists(name):
            raise ValueError(f"Collection `{name}` already exists!")
        await self.local.create_collection(
            name, vectors_config=body.vectors, sparse_vectors_config=body.sparse_vectors, metadata=body.metadata
        )
        return _ok(True)

    async def _update(self, request: web.Request) -> web.Response:
        body = models.UpdateCollection.model_validate(await _json(request))
        return _ok(await self.local.update_collection(request.match_info["name"], metadata=body.metadata))

    async def _index(self, request: web.Request) -> web.Response:
        body = models.CreateFieldIndex.model_validate(await _json(request))
        with warnings.catch_warnings():  # "payload indexes have no effect in local mode": known, fine here
            warnings.simplefilter("ignore", UserWarning)
            await self.local.create_payload_index(request.match_info["name"], body.field_name, body.field_schema)
        return _completed()

    async def _upsert(self, request: web.Request) -> web.Response:
        body = models.PointsList.model_validate(await _json(request))
        await self.local.upsert(request.match_info["name"], points=body.points)
        return _completed()

    async def _query(self, request: web.Request) -> web.Response:
        body = models.QueryRequest.model_validate(await _json(request))
        # Hybrid searches: prefetch stages (dense and the named sparse vector) fused by the query.
        response = await self.local.query_points(
            request.match_info["name"],
            query=body.query,
            prefetch=body.prefetch,
            using=body.using,
            query_filter=body.filter,
            limit=body.limit or 10,
            score_threshold=body.score_threshold,
            with_payload=body.with_payload if body.with_payload is not None else True,
        )
        return _ok(response)

    async def _query_batch(self, request: web.Request) -> web.Response:
        body = models.QueryRequestBatch.model_validate(await _json(request))
        responses = await self.local.query_batch_points(request.match_info["name"], requests=body.searches)
        return _ok([r.model_dump(mode="json", exclude_none=True) for r in responses])

    async def _delete(self, request: web.Request) -> web.Response:
        body = models.FilterSelector.model_validate(await _json(request))
        await self.local.delete(request.match_info["name"], points_selector=body)
        return _completed()

    async def _count(self, request: web.Request) -> web.Response:
        body = models.CountRequest.model_validate(await _json(request))
        return _ok(await self.local.count(request.match_info["name"], count_filter=body.filter, exact=True))
