"""Run an asyncio test server (anything with `async start()` / `async stop()`) on its own event
loop in a daemon thread, so sync fixtures and other event loops can use it."""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, Protocol, TypeVar


class AsyncServer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=AsyncServer)


class ThreadedServer(Generic[S]):
    def __init__(self, server: S, name: str) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
