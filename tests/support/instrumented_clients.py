"""Which client-library methods an OpenTelemetry instrumentor has patched (tracing's SQL and
Redis spans); tests use it to check that tracing off patches nothing and that turning it off
unpatches everything."""

from __future__ import annotations

import asyncpg.connection
import redis.asyncio
import redis.asyncio.client

#: What the store, queue, cache and rate-limit calls go through, and the instrumentors wrap.
TRACED_METHODS: dict[type, tuple[str, ...]] = {
    asyncpg.connection.Connection: ("execute", "executemany", "fetch", "fetchval", "fetchrow"),
    redis.asyncio.Redis: ("execute_command",),
    redis.asyncio.client.Pipeline: ("execute",),
}


def patched_client_methods() -> list[str]:
    """The methods of `TRACED_METHODS` that are wrapped now (wrapt's proxies carry `__wrapped__`)."""
    return [
        f"{cls.__qualname__}.{name}"
        for cls, names in TRACED_METHODS.items()
        for name in names
        if hasattr(vars(cls)[name], "__wrapped__")
    ]
