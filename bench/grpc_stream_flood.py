"""Where the mass CANCELLED at 5,500 streams came from: a bare grpc.aio server (no platform code)
whose streaming handler waits as an LLM would, and N streams opened at once from two client
processes, 100 per connection. With gRPC's default pending-call limit (1,000) the server cancels
calls that waited over a second to be picked up; with `--pending 10000` (what core/server.py
sets) none is.

    python bench/grpc_stream_flood.py [--streams 5500] [--hold 5] [--pending 10000]

Prints the outcome counts per client process. Loopback only; bounded (deadline 30 s per call).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc

SERVICE = "bench.Flood"
METHOD = f"/{SERVICE}/Wait"


def _identity(data: bytes) -> bytes:
    return data


async def _serve(ports: multiprocessing.Queue, hold: float, pending: int, lifetime: float) -> None:  # type: ignore[type-arg]
    options = (
        [("grpc.server.max_pending_requests", pending), ("grpc.server.max_pending_requests_hard_limit", pending)]
        if pending
        else []
    )
    server = grpc.aio.server(options=options)

    async def wait(request: bytes, context: Any) -> AsyncIterator[bytes]:
        await asyncio.sleep(hold)
        yield b"done"

    handler = grpc.unary_stream_rpc_method_handler(wait, _identity, _identity)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Wait": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ports.put(port)
    await asyncio.sleep(lifetime)
    await server.stop(0)


def _server_main(ports: multiprocessing.Queue, hold: float, pending: int, lifetime: float) -> None:  # type: ignore[type-arg]
    asyncio.run(_serve(ports, hold, pending, lifetime))


async def _drive(port: int, streams: int) -> tuple[dict[str, int], float | None]:
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range((streams + 99) // 100)
    ]
    outcomes: Counter[str] = Counter()
    began = time.monotonic()
    first_failure: list[float] = []

    async def one(index: int) -> None:
        call = channels[index % len(channels)].unary_stream(
            METHOD, request_serializer=_identity, response_deserializer=_identity
        )(b"", timeout=30)
        try:
            async for _message in call:
                pass
            outcomes["OK"] += 1
        except grpc.aio.AioRpcError as exc:
            outcomes[exc.code().name] += 1
            first_failure.append(time.monotonic() - began)

    await asyncio.gather(*(one(i) for i in range(streams)))
    for channel in channels:
        await channel.close()
    return dict(outcomes), min(first_failure) if first_failure else None


def _client_main(port: int, streams: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_drive(port, streams)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5500)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each call waits before answering")
    parser.add_argument("--pending", type=int, default=0, help="max pending calls (0: gRPC's default)")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    server = context.Process(target=_server_main, args=(ports, args.hold, args.pending, args.hold + 40))
    server.start()
    try:
        port = ports.get(timeout=30)
        clients = [context.Process(target=_client_main, args=(port, args.streams // 2, out)) for _ in range(2)]
        for client in clients:
            client.start()
        for _ in clients:
            outcomes, first = out.get(timeout=args.hold + 60)
            failed = f", first failure after {first:.1f} s" if first is not None else ""
            print(f"client: {outcomes}{failed}")
        for client in clients:
            client.join(timeout=30)
    finally:
        server.terminate()
        server.join(timeout=30)


if __name__ == "__main__":
    main()
