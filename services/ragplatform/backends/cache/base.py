"""Rate limits and the answer cache. Adapters: `memory.py` (in-process, embedded default) and
`redis.py` (production, shared by every gateway replica)."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate_per_second: float, burst: int) -> float:
        """0.0 if the call may proceed, else the seconds until it may (nothing is consumed)."""


class AnswerCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def corpus_version(self, tenant_id: str) -> int:
        """A number that changes whenever the tenant's documents change."""

    async def bump_corpus_version(self, tenant_id: str) -> int: ...
