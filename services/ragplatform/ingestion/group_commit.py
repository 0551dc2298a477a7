"""Group commit: calls that arrive while the batches in flight run go together in the next one.

A worker runs RAG_WORKER_CONCURRENCY jobs at once, and each small document ended in a few calls
of its own to the backends (claim the job, write its chunks, record its success, ack its
message): one round trip each, whose fixed cost (in the worker, and in PostgreSQL, Redis and the
retrieval service: a statement parsed and planned, a command read, a gRPC call) outweighed the
one row or message it carried. A `GroupCommit` sends a call's item at once when a batch slot is
free, and gathers the items that arrive while every slot is busy into the next batch: under load
concurrent jobs share round trips, while a lone call is never held back waiting for company (as
databases group the commits of concurrent transactions into one log write).

Callers may rely on: `submit(item)` returns the result the batch function gave for that item, or
raises the error of the batch that carried it (every item of a failed batch gets it, as it would
have alone); at most `max_in_flight` batches run at once; a batch carries items in the order they
were submitted, up to `max_weight` in total weight unless one item alone weighs more (it then
goes alone); a call cancelled before its batch starts is left out of it; a batch runs in the
context (contextvars) of its first item's call, so it appears in that call's trace and log
fields. After `close()` the batches in flight are cancelled and later calls raise
`GroupCommitClosed`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitClosed(RuntimeError):
    """A call after `close()` (the process is stopping)."""


def _one(_item: object) -> int:
    return 1


class _Pending(Generic[T, R]):
    __slots__ = ("context", "done", "item")

    def __init__(self, item: T, done: asyncio.Future[R], context: contextvars.Context) -> None:
        self.item = item
        self.done = done
        self.context = context


class GroupCommit(Generic[T, R]):
    """Runs `run_batch(items)` for the items submitted meanwhile; `run_batch` returns one result
    per item, in order."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_in_flight: int = 1,
        max_weight: int = 64,
        weight: Callable[[T], int] = _one,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch(n)` is told the number of items of each batch as it starts (a metric)."""
        self._run_batch = run_batch
        self._name = name
        self._max_in_flight = max(1, max_in_flight)
        self._max_weight = max(1, max_weight)
        self._weight = weight
        self._on_batch = on_batch
        self._pending: deque[_Pending[T, R]] = deque()
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: T) -> R:
        """`item`'s result, from a batch shared with the calls that came meanwhile."""
        if self._closed:
            raise GroupCommitClosed(f"{self._name} is closed (the process is stopping)")
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, done, contextvars.copy_context()))
        self._start_batches()
        return await done

    def _start_batches(self) -> None:
        while not self._closed and len(self._batches) < self._max_in_flight:
            batch = self._take_batch()
            if not batch:
                return
            # In the first item's context: its call's trace and log fields carry the batch.
            task = asyncio.create_task(self._run(batch), context=batch[0].context)
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    def _take_batch(self) -> list[_Pending[T, R]]:
        pending = self._pending
        batch: list[_Pending[T, R]] = []
        weight = 0
        while pending:
            entry = pending[0]
            if entry.done.done():  # cancelled while it waited
                pending.popleft()
                continue
            item_weight = self._weight(entry.item)
            if batch and weight + item_weight > self._max_weight:
                break
            batch.append(pending.popleft())
            weight += item_weight
        return batch

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = await self._run_batch([entry.item for entry in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name} got {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            for entry in batch:
                entry.done.cancel()
            raise
        except Exception as exc:
            for entry in batch:
                if not entry.done.done():
                    entry.done.set_exception(exc)
        else:
            for entry, result in zip(batch, results, strict=True):
                if not entry.done.done():
                    entry.done.set_result(result)
        finally:
            # This slot is free: the items that gathered meanwhile go now, in a new task.
            current = asyncio.current_task()
            if current is not None:
                self._batches.discard(current)
            self._start_batches()

    async def close(self) -> None:
        """Cancel the batches in flight and the calls waiting (on stop: their jobs are released
        and run again); later calls raise `GroupCommitClosed`."""
        self._closed = True
        for entry in self._pending:
            entry.done.cancel()
        self._pending.clear()
        batches = list(self._batches)
        for batch in batches:
            batch.cancel()
        await asyncio.gather(*batches, return_exceptions=True)
