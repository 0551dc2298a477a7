"""Rate limiter, token budget and answer cache in Redis: shared by every gateway replica.

Key layout (NS defaults to `ragplatform`; tests use a unique NS each):
  NS:rate:<key>                 GCRA theoretical arrival time, microseconds (expires when idle)
  NS:answer:<key>               cached answer bytes, with the cache TTL
  NS:corpus:<tenant>            corpus version counter (INCR)
  NS:tokens:<tenant>:<YYYYMMDD> tokens spent that UTC day (INCRBY; expires the day after)

Every operation is one atomic Redis command or script, so replicas never race. Time for the rate
limiter comes from the Redis server (`TIME`), so clock skew between replicas does not matter.
Redis failures raise `Unavailable` (see `redis_connection`).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis

from ragplatform.backends.cache.memory import seconds_until_utc_midnight, utc_day
from ragplatform.backends.redis_connection import redis_errors

DEFAULT_NAMESPACE = "ragplatform"
_SETTING = "RAG_REDIS_URL"

# GCRA (see domain/gcra.py) in one script: read, decide and write happen atomically.
# Numbers are written with %.0f because Lua's default number formatting keeps only 14 digits.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
"""


class _RedisBacked:
    def __init__(self, client: redis.Redis, url: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._redis = client
        self._url = url
        self._ns = namespace

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return redis_errors(self._url, what, _SETTING)

    async def close(self) -> None:
        """Close the client's connections (shared clients: close once, from any holder)."""
        await self._redis.aclose()


class RedisRateLimiter(_RedisBacked):
    """`RateLimiter` with GCRA in one Lua script."""

    def __init__(self, client: redis.Redis, url: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__(client, url, namespace)
        self._script = client.register_script(_GCRA_LUA)

    async def acquire(self, key: str, rate_per_second: float, burst: int) -> float:
        interval_us = 1_000_000.0 / rate_per_second
        with self._errors("rate limits"):
            wait_us = await self._script(
                keys=[f"{self._ns}:rate:{key}"], args=[interval_us, interval_us * max(1, burst)]
            )
        return int(wait_us) / 1_000_000


class RedisAnswerCache(_RedisBacked):
    """`AnswerCache`: values with a TTL (the corpus version is part of every key: see the gateway).

    Answers are bytes, so give it a client made with `decode_responses=False`."""

    async def get(self, key: str) -> bytes | None:
        with self._errors("the answer cache"):
            value = await self._redis.get(f"{self._ns}:answer:{key}")
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        with self._errors("the answer cache"):
            await self._redis.set(f"{self._ns}:answer:{key}", value, ex=ttl_seconds)


class RedisTokenBudget(_RedisBacked):
    """`TokenBudget`: INCRBY on a per-day key that expires the day after (kept one extra day so
    yesterday's total stays readable for reports)."""

    def _key(self, tenant_id: str, now: float) -> str:
        return f"{self._ns}:tokens:{tenant_id}:{utc_day(now)}"

    async def check(self, tenant_id: str, daily_limit: int) -> float:
        now = time.time()
        with self._errors("token budgets"):
            spent = await self._redis.get(self._key(tenant_id, now))
        if int(spent or 0) < daily_limit:
            return 0.0
        return seconds_until_utc_midnight(now)

    async def spend(self, tenant_id: str, tokens: int) -> int:
        now = time.time()
        key = self._key(tenant_id, now)
        day_start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        expire_at = int((day_start + timedelta(days=2)).timestamp())
        with self._errors("token budgets"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, max(0, tokens))
                pipe.expireat(key, expire_at)
                total, _ = await pipe.execute()
        return int(total)

    async def spent_today(self, tenant_id: str) -> int:
        with self._errors("token budgets"):
            spent = await self._redis.get(self._key(tenant_id, time.time()))
        return int(spent or 0)
