"""One way to connect to Redis for every Redis adapter (queue, rate limits, answer cache).

Callers may rely on: clients fail fast (short connect timeout, one quick retry) instead of
hanging while Redis restarts; the same client object recovers by itself once Redis answers
again (redis-py reconnects per command), so nothing needs re-creating; `redis_errors()` turns
every connection-level failure into the domain's `Unavailable` with a message that says what to
check. Commands that were sent but not answered are not retried here: callers decide (the queue
is at-least-once, so a caller retrying an enqueue may duplicate a message, which workers
tolerate because jobs are idempotent).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ragplatform.core.redaction import redact_url
from ragplatform.domain.errors import Unavailable

CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 5.0
MAX_CONNECTIONS = 100


def connect_redis(
    url: str, *, socket_timeout: float = COMMAND_TIMEOUT_SECONDS, decode_responses: bool = True
) -> redis.Redis:
    """A client for `url` (redis://, rediss:// or unix://). Connects lazily, on the first command.

    At most `MAX_CONNECTIONS` connections; a command that finds them all busy waits for one (up
    to `socket_timeout`) instead of failing at once: redis-py's default pool raises
    `MaxConnectionsError` past 100 commands in flight, which a gateway's rate-limit checks for 500
    concurrent uploaders reached (hundreds of uploads failed UNAVAILABLE in one bench run).

    Replies are `str` unless `decode_responses` is false (then `bytes`)."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout,
        decode_responses=decode_responses,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout,
        # One quick retry rides out a dropped idle connection; more would only delay the error
        # a caller needs to see while Redis is really down.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool


@contextmanager
def redis_errors(url: str, what: str, setting: str) -> Iterator[None]:
    """Map Redis failures raised inside the block to `Unavailable`.

    `what` names the caller's purpose ("the ingestion queue"), `setting` the variable that
    points at Redis, so the message says what to check.
    """
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable(
            f"Redis for {what} at {redact_url(url)} cannot be reached ({exc.__class__.__name__}: {exc}); "
            f"check {setting} and that Redis is running, then retry"
        ) from exc
    except RedisError as exc:
        if "LOADING" in str(exc) or "MASTERDOWN" in str(exc) or "READONLY" in str(exc):
            raise Unavailable(f"Redis for {what} at {redact_url(url)} is not ready ({exc}); retry in a moment") from exc
        raise
