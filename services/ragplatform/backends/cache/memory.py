"""In-process rate limiter, token budget and answer cache: the embedded default.

Right for one gateway process only: every replica would keep its own counts and cache. The
operator wires `redis.py` instead whenever the gateway has more than one replica.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from ragplatform.domain.gcra import gcra

DEFAULT_MAX_ENTRIES = 10_000


def utc_day(now: float) -> str:
    """The UTC calendar day of a Unix time, as YYYYMMDD (the budget period)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")


def seconds_until_utc_midnight(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()


class MemoryRateLimiter:
    """`RateLimiter` (GCRA) in a dict; forgets keys idle long enough to be full again."""

    def __init__(self, max_keys: int = DEFAULT_MAX_ENTRIES) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    async def acquire(self, key: str, rate_per_second: float, burst: int) -> float:
        now = time.monotonic()
        decision = gcra(self._tats.get(key), now, rate_per_second, burst)
        if decision.retry_after == 0.0:
            if len(self._tats) >= self._max_keys:
                # A key whose TAT lies in the past is at full burst: dropping it changes nothing.
                self._tats = {k: t for k, t in self._tats.items() if t > now}
            self._tats[key] = decision.new_tat
        return decision.retry_after

    async def close(self) -> None:
        self._tats.clear()


class MemoryAnswerCache:
    """`AnswerCache` as a bounded LRU with per-entry expiry."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        self._entries[key] = (time.monotonic() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class MemoryTokenBudget:
    """`TokenBudget` counted per (tenant, UTC day) in a dict; earlier days are dropped."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str], int] = {}
        self._lock = asyncio.Lock()

    async def check(self, tenant_id: str, daily_limit: int) -> float:
        now = time.time()
        if self._spent.get((tenant_id, utc_day(now)), 0) < daily_limit:
            return 0.0
        return seconds_until_utc_midnight(now)

    async def spend(self, tenant_id: str, tokens: int) -> int:
        day = utc_day(time.time())
        async with self._lock:
            if any(d != day for _, d in self._spent):
                self._spent = {k: v for k, v in self._spent.items() if k[1] == day}
            total = self._spent.get((tenant_id, day), 0) + max(0, tokens)
            self._spent[(tenant_id, day)] = total
            return total

    async def spent_today(self, tenant_id: str) -> int:
        return self._spent.get((tenant_id, utc_day(time.time())), 0)

    async def close(self) -> None:
        self._spent.clear()
