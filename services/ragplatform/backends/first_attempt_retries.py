"""Bounded retries that cost nothing when the first attempt succeeds.

tenacity's per-attempt machinery (its `AsyncRetrying` iterator, attempt objects, retry state and
statistics) cost more CPU than the request it wraps on the hot path — a query's embedding on
every Search, the chat completion of every answer — and almost no request needs a retry. So the
first attempt runs bare; only a transient failure enters tenacity's loop, which counts that
failure as its attempt 1: the number of attempts and the waits between them are exactly what
tenacity alone would give.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

T = TypeVar("T")


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    wait: wait_base,
    transient: Callable[[BaseException], bool],
) -> T:
    """`attempt()`'s result, trying at most `attempts` times in all while it fails with an error
    `transient` accepts (waiting `wait` between tries); the last failure, or a failure that is not
    transient, is raised as it is."""
    try:
        return await attempt()
    except Exception as first_failure:
        if not transient(first_failure):
            raise
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception(transient), reraise=True
        )
        results: list[T] = []
        async for try_ in retrying:
            with try_:
                if try_.retry_state.attempt_number == 1:
                    raise first_failure  # tenacity counts it and waits as for any failure
                results.append(await attempt())
        return results[0]  # tenacity ends its loop after a success, or re-raises the last failure
