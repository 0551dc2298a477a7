"""The exit-time report of kopf's watch streams is recognised exactly, and nothing else is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import kopf
from kopf._cogs.clients import watching

from ragplatform_operator.shutdown import is_watch_stream_closing_noise, quiet_watch_stream_closing

MESSAGE = "an error occurred during closing of asynchronous generator <async_generator object infinite_watch>"


async def _our_generator() -> AsyncGenerator[int, None]:
    yield 1


def _kopf_watch_stream() -> AsyncGenerator[Any, None]:
    """kopf's own watch-stream generator (created, never started: no API call)."""
    stream: AsyncIterator[Any] = watching.infinite_watch(
        settings=kopf.OperatorSettings(), resource=kopf.Resource("", "v1", "secrets"), namespace=None
    )
    assert isinstance(stream, AsyncGenerator)
    return stream


def _context(asyncgen: Any, error: BaseException, message: str = MESSAGE) -> dict[str, Any]:
    return {"message": message, "exception": error, "asyncgen": asyncgen}


async def test_only_the_athrow_report_of_a_kopf_watch_stream_is_noise() -> None:
    kopf_stream = _kopf_watch_stream()
    ours = _our_generator()
    athrow = RuntimeError("generator didn't stop after athrow()")
    try:
        assert is_watch_stream_closing_noise(_context(kopf_stream, athrow))
        # Any other error, another generator, or another report is passed on.
        assert not is_watch_stream_closing_noise(_context(kopf_stream, RuntimeError("boom")))
        assert not is_watch_stream_closing_noise(_context(kopf_stream, ValueError(str(athrow))))
        assert not is_watch_stream_closing_noise(_context(ours, athrow))
        assert not is_watch_stream_closing_noise(_context(kopf_stream, athrow, "Task exception was never retrieved"))
        assert not is_watch_stream_closing_noise({"message": MESSAGE})
    finally:
        await kopf_stream.aclose()
        await ours.aclose()


async def test_the_handler_drops_the_noise_and_passes_everything_else_on() -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    kopf_stream = _kopf_watch_stream()
    try:
        quiet_watch_stream_closing(loop)
        loop.call_exception_handler(_context(kopf_stream, RuntimeError("generator didn't stop after athrow()")))
        real = _context(kopf_stream, RuntimeError("a real failure"))
        loop.call_exception_handler(real)
        assert seen == [real]
    finally:
        loop.set_exception_handler(None)
        await kopf_stream.aclose()
