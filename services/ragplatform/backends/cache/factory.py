"""Choose the cache adapters from settings: Redis when RAG_REDIS_URL is set, else in-process.

In-process state is per replica: right for one gateway, wrong for several (each would allow the
full rate and keep its own cache), which is why the operator always sets RAG_REDIS_URL.
"""

from __future__ import annotations

from ragplatform.backends.cache.base import AnswerCache, RateLimiter, TokenBudget
from ragplatform.backends.cache.memory import MemoryAnswerCache, MemoryRateLimiter, MemoryTokenBudget
from ragplatform.core.settings import GatewaySettings


def _redis_url(settings: GatewaySettings) -> str:
    return settings.redis_url.get_secret_value() if settings.redis_url else ""


async def open_rate_limiter(settings: GatewaySettings) -> RateLimiter:
    """The per-API-key rate limiter. Redis connects lazily: no round trip here."""
    url = _redis_url(settings)
    if not url:
        return MemoryRateLimiter()
    from ragplatform.backends.cache.redis import RedisRateLimiter
    from ragplatform.backends.redis_connection import connect_redis

    return RedisRateLimiter(connect_redis(url), url)


async def open_answer_cache(settings: GatewaySettings) -> AnswerCache:
    url = _redis_url(settings)
    if not url:
        return MemoryAnswerCache()
    from ragplatform.backends.cache.redis import RedisAnswerCache
    from ragplatform.backends.redis_connection import connect_redis

    return RedisAnswerCache(connect_redis(url, decode_responses=False), url)


async def open_token_budget(settings: GatewaySettings) -> TokenBudget:
    url = _redis_url(settings)
    if not url:
        return MemoryTokenBudget()
    from ragplatform.backends.cache.redis import RedisTokenBudget
    from ragplatform.backends.redis_connection import connect_redis

    return RedisTokenBudget(connect_redis(url), url)
