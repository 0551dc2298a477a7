"""Coalescing answer deltas into fewer streamed messages.

Every streamed message costs CPU at each hop it crosses (generation sends it, the gateway reads
it and sends it on, the client reads it), and a language model streams one token per event. So:

* the first delta of an answer is sent at once (time to first token does not grow);
* after that, a message goes at most once per `interval` seconds: deltas that arrive meanwhile
  are merged into the next one (with `interval` 0, only the deltas that piled up while the
  previous message was being sent are merged: a stream that keeps up goes token by token);
* the answer's end, an error or a message reaching `max_chars` sends what is held at once, so
  the answer never finishes later than its last token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator

from ragplatform.backends.llms.base import AnswerDelta, AnswerEvent

_END = object()


class _Mailbox:
    """What the source produced and the consumer has not taken yet, with a wake-up for a
    consumer that waits for the next item or for a time, whichever comes first (asyncio.Queue
    would need a task per timed wait)."""

    def __init__(self) -> None:
        self.items: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: object) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None = None) -> None:
        """Until an item is waiting, or `timeout` seconds have passed (None: no limit)."""
        if self.items:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def coalesce_deltas(
    events: AsyncIterator[AnswerEvent], max_chars: int = 4096, interval: float = 0.0
) -> AsyncGenerator[AnswerEvent, None]:
    """The same events in the same order, consecutive deltas merged as the module says (at most
    `max_chars` per message, unless one delta alone is longer). Errors from `events` are raised
    here, after everything that came before them."""
    mailbox = _Mailbox()

    async def pump() -> None:
        try:
            async for event in events:
                mailbox.put(event)
        except BaseException as exc:  # handed to the consumer, in order
            mailbox.put(exc)
        finally:
            mailbox.put(_END)

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(pump())
    held: list[str] = []
    size = 0
    next_send = 0.0  # loop time before which no further delta message goes

    def merged() -> AnswerDelta:
        nonlocal size, next_send
        delta = AnswerDelta("".join(held))
        held.clear()
        size = 0
        next_send = loop.time() + interval
        return delta

    try:
        while True:
            if held and not mailbox.items:
                left = next_send - loop.time()
                if left > 0:
                    await mailbox.wait(left)
                if not mailbox.items:  # its time has come, and nothing else to add
                    yield merged()
                    continue
            await mailbox.wait()
            item = mailbox.items.popleft()
            if isinstance(item, AnswerDelta):
                if held and size + len(item.text) > max_chars:
                    yield merged()
                held.append(item.text)
                size += len(item.text)
                continue
            if held:
                yield merged()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
