"""How fast a grpc.aio server picks calls up when its event loop is busy: the queue in front of
every interceptor, admission control included.

A bare grpc.aio server (one unary method that answers at once) on `--server-cpu`, while a task
holds its event loop for BUSY ms at a time (as a process's other calls do), and a client process
on `--client-cpu` sending `--calls` calls at once. grpc.aio accepts calls one after another,
each through several turns of the loop, so the longer a turn, the fewer calls a second it even
sees; the rest wait in gRPC's own queue, where no refusal can be sent sooner.

    python bench/grpc_accept_rate.py [--busy 0 1 2 5] [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from typing import Any

import grpc

METHOD = "/bench.Accept/Call"
PENDING = [("grpc.server.max_pending_requests", 10_000), ("grpc.server.max_pending_requests_hard_limit", 10_000)]


async def _answer(_request: bytes, _context: Any) -> bytes:
    return b"x"


def _client(address: str, calls: int, cpu: int, out: Any) -> None:
    os.sched_setaffinity(0, {cpu})

    async def run() -> tuple[float, list[float]]:
        async with grpc.aio.insecure_channel(address) as channel:
            call = channel.unary_unary(METHOD)
            latencies: list[float] = []

            async def one() -> None:
                began = time.perf_counter()
                await call(b"", timeout=120)
                latencies.append(time.perf_counter() - began)

            began = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(calls)))
            return time.perf_counter() - began, sorted(latencies)

    out.put(asyncio.run(run()))


async def measure(busy_ms: float, calls: int, server_cpu: int, client_cpu: int) -> str:
    os.sched_setaffinity(0, {server_cpu})
    server = grpc.aio.server(options=PENDING)
    handler = grpc.unary_unary_rpc_method_handler(_answer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Accept", {"Call": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    holding = True

    async def hold_the_loop() -> None:
        while holding:
            if busy_ms:
                time.sleep(busy_ms / 1000)  # noqa: ASYNC251 (a busy loop is what is measured)
            await asyncio.sleep(0)

    hog = asyncio.create_task(hold_the_loop())
    context = multiprocessing.get_context("spawn")
    out: Any = context.Queue()
    client = context.Process(target=_client, args=(f"127.0.0.1:{port}", calls, client_cpu, out))
    client.start()
    # Waited for on a thread, so that this loop keeps serving meanwhile.
    seconds, latencies = await asyncio.get_running_loop().run_in_executor(None, out.get, True, 120)
    client.join(timeout=30)
    holding = False
    await hog
    await server.stop(0)
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return (
        f"loop held {busy_ms:4g} ms a turn: {calls / seconds:7.0f} calls/s picked up and answered; "
        f"latency p50 {1000 * p50:6.0f} ms  p99 {1000 * p99:6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=float, nargs="*", default=[0, 1, 2, 5], help="ms the loop is held a turn")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    for busy in args.busy:
        print(asyncio.run(measure(busy, args.calls, args.server_cpu, args.client_cpu)), flush=True)


if __name__ == "__main__":
    main()
