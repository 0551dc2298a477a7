"""Queue throughput: messages/s through `RedisStreamsQueue` with N concurrent workers, against
the raw XADD / XREADGROUP+XACK rate on the same Redis, in one run.

    python bench/queue_throughput.py [--messages 5000] [--workers 1 4 16]

Starts its own Redis 7 on a free loopback port (no persistence). Producers and workers are
asyncio tasks in this process, each worker its own consumer in the `workers` group; every
message is acknowledged. "raw" is the floor a queue on Redis Streams cannot beat: one XADD per
message, one XREADGROUP (COUNT 1) + XACK per message. The adapter adds, per receive, the delayed
set promotion and an XAUTOCLAIM scan (both Lua), and per ack an XDEL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as redis

from ragplatform.backends.queue.redis_streams import RedisStreamsQueue
from ragplatform.core.settings import QueueSettings, load_settings
from tests.support.servers import RedisServer

PRODUCERS = 8


async def _spread(total: int, parts: int, work) -> float:  # type: ignore[no-untyped-def]
    """Run `work(count)` in `parts` tasks sharing `total`; return elapsed seconds."""
    counts = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    start = time.perf_counter()
    await asyncio.gather(*(work(i, c) for i, c in enumerate(counts)))
    return time.perf_counter() - start


async def raw(url: str, messages: int, workers: int) -> tuple[float, float]:
    client = redis.Redis.from_url(url, decode_responses=True)
    stream = f"bench:raw:{uuid.uuid4().hex[:8]}"
    await client.xgroup_create(stream, "workers", id="0", mkstream=True)

    async def produce(_i: int, count: int) -> None:
        for n in range(count):
            await client.xadd(stream, {"job_id": f"job-{n}", "tenant_id": "t", "deliveries": "0"})

    async def consume(i: int, count: int) -> None:
        for _ in range(count):
            reply: Any = await client.xreadgroup("workers", f"w{i}", {stream: ">"}, count=1, block=1000)
            message_id = str(reply[0][1][0][0])
            await client.xack(stream, "workers", message_id)

    produced = await _spread(messages, PRODUCERS, produce)
    consumed = await _spread(messages, workers, consume)
    await client.delete(stream)
    await client.aclose()
    return messages / produced, messages / consumed


async def adapter(url: str, messages: int, workers: int) -> tuple[float, float]:
    settings = load_settings(QueueSettings, queue_url=url, queue_name=f"bench-{uuid.uuid4().hex[:8]}")
    queue = RedisStreamsQueue(settings)
    await queue.open()

    async def produce(_i: int, count: int) -> None:
        for n in range(count):
            await queue.enqueue(f"job-{n}", "t")

    async def consume(i: int, count: int) -> None:
        for _ in range(count):
            message = await queue.receive(f"w{i}", wait_seconds=1.0)
            assert message is not None, "a message went missing"
            await queue.ack(message)

    produced = await _spread(messages, PRODUCERS, produce)
    consumed = await _spread(messages, workers, consume)
    assert await queue.depth() == 0
    await queue.close()
    return messages / produced, messages / consumed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        print(f"Redis 7 at {server.url}; {args.messages} messages per run; {PRODUCERS} producer tasks")
        columns = ("workers", "raw XADD/s", "enqueue/s", "raw recv+ack/s", "receive+ack/s", "ratio")
        widths = (8, 12, 10, 15, 14, 6)
        print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
        for workers in args.workers:
            raw_in, raw_out = await raw(server.url, args.messages, workers)
            ours_in, ours_out = await adapter(server.url, args.messages, workers)
            print(
                f"{workers:>8} {raw_in:>12.0f} {ours_in:>10.0f} {raw_out:>15.0f} {ours_out:>14.0f}"
                f" {ours_out / raw_out:>6.2f}"
            )
    finally:
        server.remove()


if __name__ == "__main__":
    asyncio.run(main())
