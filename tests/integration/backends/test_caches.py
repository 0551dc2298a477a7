"""Rate limiter, answer cache and token budget: the in-process adapters and the Redis ones
(against a real Redis 7), held to the same behaviour."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ragplatform.backends.cache.base import AnswerCache, RateLimiter, TokenBudget
from ragplatform.backends.cache.factory import open_answer_cache, open_rate_limiter, open_token_budget
from ragplatform.backends.cache.memory import MemoryAnswerCache, MemoryRateLimiter, MemoryTokenBudget
from ragplatform.backends.cache.redis import RedisAnswerCache, RedisRateLimiter, RedisTokenBudget
from ragplatform.backends.redis_connection import MAX_CONNECTIONS, connect_redis
from ragplatform.core.settings import GatewaySettings, load_settings
from ragplatform.domain.errors import Unavailable
from tests.support.servers import RedisServer, free_port


@dataclass
class Caches:
    limiter: RateLimiter
    cache: AnswerCache
    budget: TokenBudget


@pytest.fixture(params=["memory", "redis"])
async def caches(request: pytest.FixtureRequest, redis_namespace: str) -> AsyncIterator[Caches]:
    if request.param == "memory":
        yield Caches(MemoryRateLimiter(), MemoryAnswerCache(), MemoryTokenBudget())
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    text, raw = connect_redis(server.url), connect_redis(server.url, decode_responses=False)
    try:
        yield Caches(
            RedisRateLimiter(text, server.url, redis_namespace),
            RedisAnswerCache(raw, server.url, redis_namespace),
            RedisTokenBudget(text, server.url, redis_namespace),
        )
    finally:
        await text.aclose()
        await raw.aclose()


def key() -> str:
    return uuid.uuid4().hex


# --- rate limiter ------------------------------------------------------------------------------
async def test_a_burst_passes_then_calls_wait_one_emission_interval(caches: Caches) -> None:
    k = key()
    waits = [await caches.limiter.acquire(k, rate_per_second=10.0, burst=3) for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]
    refused = await caches.limiter.acquire(k, rate_per_second=10.0, burst=3)
    assert 0.0 < refused <= 0.1
    # A refused call consumed nothing: asking again does not push the wait further out.
    assert await caches.limiter.acquire(k, rate_per_second=10.0, burst=3) <= refused
    await asyncio.sleep(refused + 0.02)
    assert await caches.limiter.acquire(k, rate_per_second=10.0, burst=3) == 0.0


async def test_keys_are_limited_independently(caches: Caches) -> None:
    a, b = key(), key()
    assert await caches.limiter.acquire(a, 1.0, 1) == 0.0
    assert await caches.limiter.acquire(a, 1.0, 1) > 0.0
    assert await caches.limiter.acquire(b, 1.0, 1) == 0.0


async def test_concurrent_callers_never_exceed_the_burst(caches: Caches) -> None:
    k = key()
    # A rate so low that nothing refills during the test: exactly `burst` calls may pass.
    waits = await asyncio.gather(*(caches.limiter.acquire(k, 0.001, 10) for _ in range(60)))
    assert sum(w == 0.0 for w in waits) == 10


# --- answer cache ------------------------------------------------------------------------------
async def test_answers_round_trip_and_expire(caches: Caches) -> None:
    k = key()
    assert await caches.cache.get(k) is None
    await caches.cache.set(k, b"\x00answer bytes\xff", ttl_seconds=1)
    assert await caches.cache.get(k) == b"\x00answer bytes\xff"
    await asyncio.sleep(1.3)
    assert await caches.cache.get(k) is None


async def test_a_zero_ttl_stores_nothing(caches: Caches) -> None:
    k = key()
    await caches.cache.set(k, b"x", ttl_seconds=0)
    assert await caches.cache.get(k) is None


# --- token budget ------------------------------------------------------------------------------
async def test_a_tenant_over_its_daily_budget_waits_for_the_next_utc_day(caches: Caches) -> None:
    tenant, other = key(), key()
    assert await caches.budget.check(tenant, daily_limit=100) == 0.0
    assert await caches.budget.spend(tenant, 60) == 60
    assert await caches.budget.check(tenant, daily_limit=100) == 0.0
    assert await caches.budget.spend(tenant, 60) == 120
    assert await caches.budget.spent_today(tenant) == 120
    retry = await caches.budget.check(tenant, daily_limit=100)
    assert 0.0 < retry <= 24 * 3600
    assert await caches.budget.check(other, daily_limit=100) == 0.0


async def test_redis_budget_keys_expire(redis_server: RedisServer, redis_namespace: str) -> None:
    client = connect_redis(redis_server.url)
    try:
        budget = RedisTokenBudget(client, redis_server.url, redis_namespace)
        await budget.spend("t", 5)
        (budget_key,) = [k async for k in client.scan_iter(f"{redis_namespace}:tokens:t:*")]
        assert 0 < await client.ttl(budget_key) <= 2 * 24 * 3600
    finally:
        await client.aclose()


async def test_commands_beyond_the_connection_limit_wait_for_a_connection(redis_server: RedisServer) -> None:
    # More commands in flight than the pool has connections (each holds one for 0.2 s): they
    # queue for a connection instead of failing with MaxConnectionsError.
    client = connect_redis(redis_server.url)
    try:
        key = f"empty-{uuid.uuid4().hex}"
        replies = await asyncio.gather(*(client.blpop([key], timeout=0.2) for _ in range(MAX_CONNECTIONS + 30)))
        assert replies == [None] * (MAX_CONNECTIONS + 30)
    finally:
        await client.aclose()


# --- factory and failures ----------------------------------------------------------------------
async def test_the_factory_chooses_redis_only_when_configured(redis_server: RedisServer) -> None:
    in_process = load_settings(GatewaySettings)
    assert isinstance(await open_rate_limiter(in_process), MemoryRateLimiter)
    assert isinstance(await open_answer_cache(in_process), MemoryAnswerCache)
    assert isinstance(await open_token_budget(in_process), MemoryTokenBudget)
    shared = load_settings(GatewaySettings, redis_url=redis_server.url)
    cache = await open_answer_cache(shared)
    assert isinstance(cache, RedisAnswerCache)
    k = key()
    await cache.set(k, b"bytes", 10)
    assert await cache.get(k) == b"bytes"
    assert isinstance(await open_rate_limiter(shared), RedisRateLimiter)
    assert isinstance(await open_token_budget(shared), RedisTokenBudget)


async def test_an_unreachable_redis_is_unavailable_with_what_to_check() -> None:
    limiter = await open_rate_limiter(load_settings(GatewaySettings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(Unavailable, match="RAG_REDIS_URL"):
        await limiter.acquire("k", 1.0, 1)
