"""The floor of each kind of hop an Ask makes, in CPU on this machine:

* gRPC: a grpc.aio unary round trip and one server-streamed message, measured the way the
  platform's processes run (an echo server process on the service CPUs, its client in this
  process). No protobuf: raw bytes with identity (de)serialisers, so the figure is gRPC's and
  asyncio's own cost, the least any hop can cost. Client and server CPU together.
* SQL: one `SELECT $1` through PgBouncer with asyncpg (as the store uses it: no statement
  cache), client CPU only (the database is not the platform's process).
* Redis: one command with redis.asyncio, client CPU only.

    python bench/hop_floor.py [--service-cpus 0] [--harness-cpus 1]      (gRPC only)

`bench/ask_throughput.py` measures all of them in the same run as its load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.process_cpu import process_cpu_seconds

SERVICE = "bench.Echo"
UNARY = f"/{SERVICE}/Unary"
STREAM = f"/{SERVICE}/Stream"
# Sizes like the Ask path's: a small request/reply, and token deltas of a few words.
UNARY_PAYLOAD = b"q" * 200
DELTA_PAYLOAD = b"d" * 24


def identity(data: bytes) -> bytes:
    """The echo's (de)serializer: raw bytes, no protobuf."""
    return data


async def echo_unary(request: bytes, context: Any) -> bytes:
    """The echo's unary method: the request back."""
    return request


async def echo_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """The echo's streaming method: as many token-sized deltas as the request's number."""
    for _ in range(int(request)):
        yield DELTA_PAYLOAD


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo_unary, identity, identity),
        "Stream": grpc.unary_stream_rpc_method_handler(echo_stream, identity, identity),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"ready {bound}", flush=True)
    await server.wait_for_termination()


@dataclass(frozen=True)
class Floor:
    """CPU milliseconds per hop."""

    unary_ms: float  # per gRPC unary round trip (client and server)
    message_ms: float  # per server-streamed message (the stream's own call amortised away)
    sql_ms: float = 0.0  # per SQL statement (client side)
    redis_ms: float = 0.0  # per Redis command (client side)

    def for_hops(self, calls: float, messages: float, statements: float = 0.0, commands: float = 0.0) -> float:
        """The least CPU an exchange of these hops costs."""
        return calls * self.unary_ms + messages * self.message_ms + statements * self.sql_ms + commands * self.redis_ms


async def _sql_cpu(dsn: str, statements: int, concurrency: int) -> float:
    import asyncpg  # type: ignore[import-untyped]

    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency, statement_cache_size=0)
    try:

        async def worker(n: int) -> None:
            for i in range(n):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT $1::int", i)

        await worker(concurrency)
        started = time.process_time()
        await asyncio.gather(*(worker(statements // concurrency) for _ in range(concurrency)))
        return time.process_time() - started
    finally:
        await pool.close()


async def _redis_cpu(url: str, commands: int, concurrency: int) -> float:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:

        async def worker(n: int) -> None:
            for i in range(n):
                await client.get(f"bench:floor:{i % 16}")

        await worker(concurrency)
        started = time.process_time()
        await asyncio.gather(*(worker(commands // concurrency) for _ in range(concurrency)))
        return time.process_time() - started
    finally:
        await client.aclose()


def measure_backend_floor(floor: Floor, dsn: str, redis_url: str, count: int = 2000, concurrency: int = 10) -> Floor:
    """`floor` with the SQL statement and Redis command costs measured (client CPU, this process)."""
    sql = asyncio.run(_sql_cpu(dsn, count, concurrency))
    red = asyncio.run(_redis_cpu(redis_url, count, concurrency))
    return Floor(floor.unary_ms, floor.message_ms, 1000 * sql / count, 1000 * red / count)


async def _load(address: str, calls: int, streams: int, per_stream: int, concurrency: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        unary = channel.unary_unary(UNARY, request_serializer=identity, response_deserializer=identity)
        stream = channel.unary_stream(STREAM, request_serializer=identity, response_deserializer=identity)
        await unary(UNARY_PAYLOAD)  # connect outside the measurement

        async def unary_worker(n: int) -> None:
            for _ in range(n):
                await unary(UNARY_PAYLOAD)

        async def stream_worker(n: int) -> None:
            for _ in range(n):
                async for _message in stream(str(per_stream).encode()):
                    pass

        if calls:
            await asyncio.gather(*(unary_worker(calls // concurrency) for _ in range(concurrency)))
        if streams:
            await asyncio.gather(*(stream_worker(streams // concurrency) for _ in range(concurrency)))


def _measured(server_pid: int, address: str, calls: int, streams: int, per_stream: int, concurrency: int) -> float:
    server_before, client_before = process_cpu_seconds(server_pid), time.process_time()
    asyncio.run(_load(address, calls, streams, per_stream, concurrency))
    return (process_cpu_seconds(server_pid) - server_before) + (time.process_time() - client_before)


def measure_floor(service_cpus: set[int] | None = None, calls: int = 2000, concurrency: int = 20) -> Floor:
    """Start an echo server process (pinned to `service_cpus`), drive it from this process, and
    return the CPU per unary round trip and per streamed message (both sides)."""
    process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, cwd=Path(__file__).parent)
    try:
        if service_cpus:
            os.sched_setaffinity(process.pid, service_cpus)
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.startswith("ready "):
            raise RuntimeError(f"the echo server did not start: {line!r}")
        address = f"127.0.0.1:{line.split()[1]}"
        _measured(process.pid, address, calls // 4, 0, 0, concurrency)  # warm up
        unary_cpu = _measured(process.pid, address, calls, 0, 0, concurrency)
        # Streams of 1 and of 101 messages: the difference is 100 messages' cost, without the call.
        streams = calls // 4
        short = _measured(process.pid, address, 0, streams, 1, concurrency)
        long = _measured(process.pid, address, 0, streams, 101, concurrency)
        return Floor(
            unary_ms=1000 * unary_cpu / calls,
            message_ms=max(0.0, 1000 * (long - short) / (streams * 100)),
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def parse_cpus(text: str) -> set[int]:
    """'0', '0,2' or '0-3' -> a CPU set."""
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--service-cpus", default="0")
    parser.add_argument("--harness-cpus", default="1")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(0))
        return
    os.sched_setaffinity(0, parse_cpus(args.harness_cpus))
    floor = measure_floor(parse_cpus(args.service_cpus))
    print(
        f"grpc.aio floor: unary round trip {floor.unary_ms:.3f} ms CPU, streamed message {floor.message_ms:.4f} ms CPU"
    )


if __name__ == "__main__":
    main()
