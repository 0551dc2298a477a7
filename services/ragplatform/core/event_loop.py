"""The event loop a service process runs on: uvloop by default, asyncio's own on request.

uvloop (libuv under asyncio's API) runs the same code with less CPU per callback, per socket
read and per timer. Every service spends most of its CPU in that machinery (grpc.aio's
completion-queue callbacks, the HTTP and database clients' I/O): on this project's Ask path
it cut the CPU per answer measurably (docs/performance.md). grpc.aio works on any asyncio loop;
`RAG_EVENT_LOOP=asyncio` is the way back should a library ever misbehave on uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
EventLoopKind = Literal["uvloop", "asyncio"]


def loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of this kind."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """`asyncio.run(main)` on a loop of this kind."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
