"""Coalescing answer deltas: send every delta at once when the stream keeps up, and merge the
deltas that piled up while the previous message was being sent when it does not.

No timer and no added latency: a quiet stream is forwarded token by token, a busy one sends
fewer, larger messages — fewer gRPC messages for generation and the gateway to handle exactly
when CPU is short, which is when it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from ragplatform.backends.llms.base import AnswerDelta, AnswerEvent

_END = object()


async def coalesce_deltas(
    events: AsyncIterator[AnswerEvent], max_chars: int = 4096
) -> AsyncGenerator[AnswerEvent, None]:
    """The same events in the same order, with consecutive deltas waiting in line merged (up to
    `max_chars` per message). Errors from `events` are raised here, after what came before."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        except BaseException as exc:  # handed to the consumer, in order
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    try:
        item = await queue.get()
        while item is not _END:
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, AnswerDelta):
                yield item  # type: ignore[misc]
                item = await queue.get()
                continue
            parts, size = [item.text], len(item.text)
            following = _next_waiting(queue)
            while isinstance(following, AnswerDelta) and size + len(following.text) <= max_chars:
                parts.append(following.text)
                size += len(following.text)
                following = _next_waiting(queue)
            yield AnswerDelta("".join(parts))
            item = following if following is not None else await queue.get()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _next_waiting(queue: asyncio.Queue[object]) -> object | None:
    """The next item if one is already waiting, else None."""
    try:
        return queue.get_nowait()
    except asyncio.QueueEmpty:
        return None
