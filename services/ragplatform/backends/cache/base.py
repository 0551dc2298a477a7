"""Rate limits, token budgets and the answer cache. Adapters: `memory.py` (in-process, embedded
default) and `redis.py` (production, shared by every gateway replica)."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate_per_second: float, burst: int) -> float:
        """0.0 if the call may proceed, else the seconds until it may (nothing is consumed)."""

    async def close(self) -> None: ...


class AnswerCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def close(self) -> None: ...


class TokenBudget(Protocol):
    """Per-tenant LLM token budget per UTC day.

    `check` before a call, `spend` after it with the usage the model reported: a call that
    starts under the budget is allowed to finish, so a day's total may exceed the limit by at
    most one answer per concurrent call.
    """

    async def check(self, tenant_id: str, daily_limit: int) -> float:
        """0.0 if the tenant is under `daily_limit` today, else seconds until the UTC day ends."""

    async def spend(self, tenant_id: str, tokens: int) -> int:
        """Add `tokens` to today's total; return the new total."""

    async def spent_today(self, tenant_id: str) -> int: ...

    async def close(self) -> None: ...
