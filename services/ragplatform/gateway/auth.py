"""API-key authentication and per-key rate limiting, as a server interceptor.

Keys arrive as `authorization: Bearer <key>` (or `x-api-key: <key>`); only their SHA-256 is
stored. A key's lookup is cached in-process so that a hot gateway does not hit the store on every
call; a revoked key stops working within the revocation poll interval (RAG_API_KEY_REVOCATION_POLL_SECONDS)
on every gateway replica, since each polls the store's revocation count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import structlog

from ragplatform.backends.cache.base import RateLimiter
from ragplatform.backends.store.api_keys import hash_api_key
from ragplatform.backends.store.base import Store
from ragplatform.core.context import record_authenticated_tenant, scoped, tenant_var
from ragplatform.core.interceptors.base import ScopedInterceptor, metadata_value
from ragplatform.domain.errors import RagError, ResourceExhausted, Unauthenticated
from ragplatform.domain.models import ApiKey

log = structlog.get_logger("ragplatform.auth")

HOW_TO_GET_A_KEY = "send 'authorization: Bearer <key>'; create a key with `ragplatform keys create --tenant NAME`"


def extract_api_key(authorization: str, x_api_key: str) -> str:
    """The key from the metadata, or '' when none was sent."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""
    return x_api_key.strip()


class ApiKeyAuthenticator:
    """Looks keys up in the store, caching each answer for `cache_seconds`. A revocation reaches
    the cache within `following_revocations`' poll interval: the store's revocation count is
    polled in the background (no cost per call) and the whole cache dropped when it moves."""

    def __init__(self, store: Store, cache_seconds: float = 30.0, max_entries: int = 10_000) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._max = max_entries
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._revision: int | None = None
        # Bumped when the cache is dropped: a lookup that began before does not store its answer.
        self._generation = 0

    async def check_revocations(self) -> bool:
        """Drop the cache if a key was revoked since the last check; True when it did."""
        revision = await self._store.api_key_revision()
        changed = self._revision is not None and revision != self._revision
        self._revision = revision
        if changed:
            self._generation += 1
            self._cache.clear()
        return changed

    @asynccontextmanager
    async def following_revocations(self, poll_seconds: float) -> AsyncIterator[None]:
        """Poll for revocations every `poll_seconds` while the block runs."""
        task = asyncio.create_task(self._follow(poll_seconds))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, poll_seconds: float) -> None:
        failing = False
        while True:
            try:
                await self.check_revocations()
                failing = False
            except RagError as exc:
                if not failing:  # once per outage, not every poll
                    log.warning("cannot check for revoked API keys; cached keys stay valid", error=exc.message)
                failing = True
            await asyncio.sleep(poll_seconds)

    async def authenticate(self, key: str) -> ApiKey:
        if not key:
            raise Unauthenticated(f"missing API key: {HOW_TO_GET_A_KEY}")
        digest = hash_api_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            found = cached[1]
        else:
            generation = self._generation
            found = await self._store.find_api_key(digest)
            if len(self._cache) >= self._max:
                self._cache.clear()
            if generation == self._generation:
                self._cache[digest] = (now + self._ttl, found)
        if found is None:
            raise Unauthenticated(f"unknown API key: {HOW_TO_GET_A_KEY}")
        if found.revoked:
            raise Unauthenticated(f"API key {found.key_id} was revoked: {HOW_TO_GET_A_KEY}")
        return found


class ApiKeyInterceptor(ScopedInterceptor):
    def __init__(self, authenticator: ApiKeyAuthenticator, limiter: RateLimiter, rps: float, burst: int) -> None:
        self._authenticator = authenticator
        self._limiter = limiter
        self._rps = rps
        self._burst = burst

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        key = extract_api_key(metadata_value(context, "authorization"), metadata_value(context, "x-api-key"))
        api_key = await self._authenticator.authenticate(key)
        record_authenticated_tenant(api_key.tenant_id)
        wait = await self._limiter.acquire(f"key:{api_key.key_id}", self._rps, self._burst)
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit of {self._rps:g} requests/s for this API key reached; retry in {wait:.2f} s",
                retry_after_seconds=wait,
            )
        with scoped({tenant_var: api_key.tenant_id}, {"tenant": api_key.tenant_id}):
            yield
