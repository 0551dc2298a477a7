"""Reads the ingestion queue's depth from Redis for the worker autoscaler.

Depth = the consumer group `workers`' `lag` (entries not yet delivered to any worker) plus its
`pending` count (delivered but not acknowledged: jobs in flight), from `XINFO GROUPS` on the
stream `ragplatform:queue:<queue name>` — the queue contract the services implement.

A Redis that cannot be reached, or answers an error, raises `QueueDepthUnavailable` with a
message that says what to check; callers turn it into a condition and keep the worker count.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ragplatform_operator.redaction import redact_secrets

CONSUMER_GROUP = "workers"
_STREAM_PREFIX = "ragplatform:queue:"
# Short timeouts: the autoscaler polls again soon, and a slow Redis must not stall the operator.
_TIMEOUT_SECONDS = 3.0


def stream_key(queue_name: str) -> str:
    """The Redis stream key of an ingestion queue."""
    return f"{_STREAM_PREFIX}{queue_name}"


class QueueDepthUnavailable(Exception):
    """The queue depth could not be read; the message says why and what to check."""


def _unavailable(message: str) -> QueueDepthUnavailable:
    # Never a Redis password in a status message, an Event or a log line (the URL's, or one
    # that the client library echoes back in its error).
    return QueueDepthUnavailable(redact_secrets(message))


def depth_from_groups(groups: list[dict[str, Any]], stream_length: int) -> int:
    """Depth from an `XINFO GROUPS` answer (decoded) and the stream's length.

    With no `workers` group yet (no worker ever started), every entry is waiting. Redis reports
    `lag` as nil when it cannot compute it (e.g. after entries were deleted); the stream length
    is then the safe upper bound, so the autoscaler errs towards more workers, not fewer.
    """
    for group in groups:
        if group.get("name") == CONSUMER_GROUP:
            pending = int(group.get("pending") or 0)
            lag = group.get("lag")
            return pending + (stream_length if lag is None else int(lag))
    return stream_length


class QueueDepthReader:
    """Reads queue depths, keeping one Redis connection pool per URL. Close it with `aclose`."""

    def __init__(self) -> None:
        self._clients: dict[str, aioredis.Redis] = {}

    def _client(self, url: str) -> aioredis.Redis:
        client = self._clients.get(url)
        if client is None:
            client = aioredis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=_TIMEOUT_SECONDS,
                socket_connect_timeout=_TIMEOUT_SECONDS,
            )
            self._clients[url] = client
        return client

    async def depth(self, url: str, queue_name: str) -> int:
        """Jobs queued or in flight on queue `queue_name` of the Redis at `url`."""
        key = stream_key(queue_name)
        invalid = (
            "the Redis URL in spec.redis.urlSecretRef is not valid ({}); "
            "it must look like redis://[:PASSWORD@]HOST:PORT/DB"
        )
        try:
            client = self._client(url)
        except ValueError as exc:
            raise _unavailable(invalid.format(exc)) from None
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(key)
                pipe.xlen(key)
                groups, length = await pipe.execute(raise_on_error=False)
        except (TypeError, ValueError) as exc:  # a query parameter redis-py does not know (?token=)
            raise _unavailable(invalid.format(exc)) from None
        except (RedisError, OSError) as exc:
            raise _unavailable(
                f"cannot read queue {key} from Redis at {url}: {str(exc).rstrip('.')}. "
                "Check that Redis is up and reachable from the operator and that spec.redis.urlSecretRef "
                "holds the right URL; the worker count stays as it is until the queue can be read."
            ) from None
        if isinstance(groups, ResponseError):
            if "no such key" in str(groups).lower():
                return 0  # nothing was ever enqueued
            raise _unavailable(f"Redis at {url} refused XINFO GROUPS {key}: {groups}")
        if isinstance(length, Exception):
            raise _unavailable(f"Redis at {url} refused XLEN {key}: {length}")
        return depth_from_groups(list(groups), int(length))

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
