"""The services' event loop: uvloop by default, asyncio's own on request; grpc.aio serves and
calls on both (a real server and channel, in process)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import uvloop

from ragplatform.core.event_loop import EventLoopKind, run
from ragplatform.core.settings import CommonSettings, SettingsError, load_settings


def _identity(data: bytes) -> bytes:
    return data


async def _echo_round_trip() -> tuple[type[asyncio.AbstractEventLoop], bytes, list[bytes]]:
    async def unary(request: bytes, context: Any) -> bytes:
        return request[::-1]

    async def stream(request: bytes, context: Any) -> Any:
        for part in request.split(b" "):
            yield part

    server = grpc.aio.server()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, _identity, _identity),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, _identity, _identity),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reversed_ = await channel.unary_unary("/test.Echo/Unary", _identity, _identity)(b"abc", timeout=10)
            parts = [p async for p in channel.unary_stream("/test.Echo/Stream", _identity, _identity)(b"a b c")]
    finally:
        await server.stop(None)
    return type(asyncio.get_running_loop()), reversed_, parts


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_grpc_serves_and_calls_on_either_loop(kind: EventLoopKind) -> None:
    loop_type, reversed_, parts = run(_echo_round_trip(), kind)
    assert issubclass(loop_type, uvloop.Loop) == (kind == "uvloop")
    assert reversed_ == b"cba"
    assert parts == [b"a", b"b", b"c"]


def test_uvloop_is_the_default_and_an_unknown_loop_is_refused_by_name() -> None:
    assert load_settings(CommonSettings).event_loop == "uvloop"
    assert load_settings(CommonSettings, event_loop="asyncio").event_loop == "asyncio"
    with pytest.raises(SettingsError, match="RAG_EVENT_LOOP='tokio'"):
        load_settings(CommonSettings, event_loop="tokio")
