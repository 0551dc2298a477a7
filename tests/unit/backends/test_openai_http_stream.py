"""`OpenAIHttp.post_stream` against a real aiohttp server on loopback that writes its body in
pieces cut anywhere (inside a line, inside a CRLF, inside a UTF-8 character), as a network may."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ragplatform.backends.openai_http import HttpConnectionError, HttpStatusError, HttpTimeoutError, OpenAIHttp

PIECES = [b'data: {"a": 1}\r', b"\n\r\ndata: caf", "é".encode()[:1], "é".encode()[1:] + b"\n\nda", b"ta: [DONE]"]


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for piece in PIECES:
        await response.write(piece)
        await asyncio.sleep(0.01)  # separate reads on the client
    return response


async def slow(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"data: first\n")
    await asyncio.sleep(2)
    return response


async def refused(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "no such model"}}, status=404)


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/stream", streamed)
    app.router.add_post("/v1/slow", slow)
    app.router.add_post("/v1/refused", refused)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_lines_are_whole_whatever_the_reads(base_url: str) -> None:
    http = OpenAIHttp(base_url, None, 5.0, 10)
    response = await http.post_stream("/stream", {"stream": True})
    lines = [line async for batch in response.line_batches() for line in batch]
    await response.close()
    await http.close()
    assert [line for line in lines if line] == ['data: {"a": 1}', "data: café", "data: [DONE]"]


async def test_a_stream_that_stops_sending_times_out(base_url: str) -> None:
    http = OpenAIHttp(base_url, None, 0.3, 10)
    response = await http.post_stream("/slow", {})
    seen: list[str] = []

    async def read() -> None:
        async for batch in response.line_batches():
            seen.extend(batch)

    with pytest.raises(HttpTimeoutError, match=r"no data within 0\.3 s"):
        await read()
    await response.close()
    await http.close()
    assert seen == ["data: first"]


async def test_an_error_status_carries_the_body(base_url: str) -> None:
    http = OpenAIHttp(base_url, None, 5.0, 10)
    with pytest.raises(HttpStatusError) as raised:
        await http.post_stream("/refused", {})
    await http.close()
    assert raised.value.status == 404
    assert raised.value.error_body() == {"message": "no such model"}


async def test_an_unreachable_endpoint_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = OpenAIHttp(f"http://127.0.0.1:{port}/v1", None, 5.0, 10)
    with pytest.raises(HttpConnectionError) as raised:
        await http.post_stream("/stream", {})
    await http.close()
    assert not isinstance(raised.value, HttpTimeoutError)
