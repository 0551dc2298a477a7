"""A client-streaming call (an upload) refused for capacity must reach its caller as
RESOURCE_EXHAUSTED with the retry hint, whatever the caller was still writing.

grpc.aio's client reports INTERNAL "Internal error from Core" instead of the server's status when
one of its writes fails because the server already ended the call (grpc/grpc#36066): a refusal
sent before the request stream is read turns into an error with no retry hint, and the upload is
lost (seen as lost uploads in bench/ingest_throughput.py with 500 uploaders). Real gRPC on
loopback; the service behind the interceptors is a generic handler that counts bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from ragplatform.core.interceptors.base import ScopedInterceptor, fuse_scopes

METHOD = "/test.Uploads/Upload"
CHUNK = b"x" * 64 * 1024


class PassThrough(ScopedInterceptor):
    """Another scope beside admission, so the fused chain (what services run) is exercised."""

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        yield


async def count_bytes(requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    total = 0
    async for message in requests:
        total += len(message)
    return str(total).encode()


@asynccontextmanager
async def server(chain: Sequence[grpc.aio.ServerInterceptor[Any, Any]]) -> AsyncIterator[str]:
    handler = grpc.method_handlers_generic_handler(
        "test.Uploads", {"Upload": grpc.stream_unary_rpc_method_handler(count_bytes)}
    )
    srv = grpc.aio.server(interceptors=list(chain))
    srv.add_generic_rpc_handlers((handler,))
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await srv.stop(grace=None)


def admission() -> AdmissionInterceptor:
    policy = LimitPolicy(ceiling=1, lag_target_seconds=0)  # one call at a time, however loaded
    return AdmissionInterceptor("uploads", policy, retry_after_seconds=0.5)


@pytest.mark.parametrize("fused", [False, True], ids=["alone", "fused-chain"])
async def test_a_refused_upload_gets_the_refusal_and_its_hint_not_internal(fused: bool) -> None:
    chain = fuse_scopes([admission(), PassThrough()]) if fused else [admission()]
    async with server(chain) as address, grpc.aio.insecure_channel(address) as channel:
        upload = channel.stream_unary(METHOD)
        release = asyncio.Event()

        async def held_open() -> AsyncIterator[bytes]:
            yield CHUNK
            await release.wait()

        holder = upload(held_open())  # holds the only slot until it is done writing
        await asyncio.sleep(0.3)

        async def four_mib() -> AsyncIterator[bytes]:  # still being written when the refusal comes
            for _ in range(64):
                yield CHUNK

        async def refused_upload() -> grpc.aio.AioRpcError:
            # A request iterator, as the gateway and the Python client send uploads.
            try:
                await upload(four_mib())
            except grpc.aio.AioRpcError as exc:
                return exc
            raise AssertionError("an upload past the limit was accepted")

        errors = await asyncio.gather(*(refused_upload() for _ in range(12)))
        assert [e.code() for e in errors] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 12, [e.details() for e in errors]
        assert all(dict(e.trailing_metadata() or ())["retry-after-seconds"] == "0.500" for e in errors)
        assert all("at capacity" in (e.details() or "") for e in errors)

        release.set()
        assert await holder == str(len(CHUNK)).encode()
