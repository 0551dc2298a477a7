"""What an outgoing unary call costs the caller, by the way it is made: grpc.aio's call objects
against the synchronous stub's `.future()` completed on gRPC's own thread and handed to the event
loop with `loop.call_soon_threadsafe`.

An echo server process (bench/hop_floor.py's, raw bytes) runs on `--service-cpus`; the client
runs here, on `--harness-cpus`, on uvloop (as the services do), and both processes' CPU is read
from /proc. Each mode is measured in rounds alternating with the others, so drift on a shared
machine falls on all of them alike.

    python bench/grpc_client_paths.py [--calls 3000] [--concurrency 4,20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hop_floor import UNARY, UNARY_PAYLOAD, parse_cpus
from bench.process_cpu import process_cpu_seconds

Caller = Callable[[bytes], Awaitable[bytes]]


def _identity(data: bytes) -> bytes:
    return data


def aio_caller(channel: grpc.aio.Channel) -> Caller:
    call = channel.unary_unary(UNARY, request_serializer=_identity, response_deserializer=_identity)

    async def invoke(request: bytes) -> bytes:
        return await call(request, timeout=30.0, metadata=(("x-request-id", "r"),))  # type: ignore[no-any-return]

    return invoke


def future_caller(channel: grpc.Channel) -> Caller:
    call = channel.unary_unary(UNARY, request_serializer=_identity, response_deserializer=_identity)

    async def invoke(request: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        rendezvous = call.future(request, timeout=30.0, metadata=(("x-request-id", "r"),))

        def done(_: Any) -> None:
            loop.call_soon_threadsafe(_settle, waiter, rendezvous)

        rendezvous.add_done_callback(done)
        return await waiter  # type: ignore[no-any-return]

    return invoke


def _settle(waiter: asyncio.Future[Any], rendezvous: Any) -> None:
    if waiter.done():
        return
    try:
        waiter.set_result(rendezvous.result())
    except grpc.RpcError as exc:
        waiter.set_exception(exc)


async def _drive(invoke: Caller, calls: int, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await invoke(UNARY_PAYLOAD)

    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))


async def _measure(mode: str, address: str, server_pid: int, calls: int, concurrency: int) -> tuple[float, float]:
    """(client ms, server ms) of CPU per call."""
    aio_channel = grpc.aio.insecure_channel(address)  # grpc.aio's poller runs in both modes, as in a service
    sync_channel = grpc.insecure_channel(address) if mode == "future" else None
    try:
        invoke = aio_caller(aio_channel) if mode == "aio" else future_caller(sync_channel)  # type: ignore[arg-type]
        await _drive(invoke, concurrency * 20, concurrency)  # connect and warm up
        server_before, client_before = process_cpu_seconds(server_pid), time.process_time()
        await _drive(invoke, calls, concurrency)
        client = time.process_time() - client_before
        server = process_cpu_seconds(server_pid) - server_before
        return 1000 * client / calls, 1000 * server / calls
    finally:
        await aio_channel.close()
        if sync_channel is not None:
            sync_channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service-cpus", default="0")
    parser.add_argument("--harness-cpus", default="1")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", default="4,20")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="aio,future")
    args = parser.parse_args()
    os.sched_setaffinity(0, parse_cpus(args.harness_cpus))
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "hop_floor.py"), "--serve"], stdout=subprocess.PIPE
    )
    try:
        os.sched_setaffinity(server.pid, parse_cpus(args.service_cpus))
        assert server.stdout is not None
        address = f"127.0.0.1:{server.stdout.readline().decode().split()[1]}"
        modes = args.modes.split(",")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for _ in range(args.rounds):
                for mode in modes:
                    results[mode].append(uvloop.run(_measure(mode, address, server.pid, args.calls, concurrency)))
            for mode in modes:
                client = [r[0] for r in results[mode]]
                srv = [r[1] for r in results[mode]]
                print(
                    f"{concurrency:3d} in flight  {mode:7s} client ms/call "
                    f"{' '.join(f'{c:.3f}' for c in client)} (median {statistics.median(client):.3f})  "
                    f"server {statistics.median(srv):.3f}"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
