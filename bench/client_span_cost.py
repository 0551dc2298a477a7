"""What tracing's SQL and Redis spans cost: CPU per statement (asyncpg through PgBouncer) and per
Redis command, with tracing off, on outside any trace, and on inside a trace, side by side.

    python bench/client_span_cost.py [--calls 2000] [--rounds 5]

Starts its own PostgreSQL, PgBouncer (transaction pooling) and Redis on loopback ports. Each call
is one `SELECT $1::int` on a connection set as the store's (no statement cache) or one Redis
`GET`, awaited one after another; the figure is this process's CPU time (`time.process_time`,
the span processor's export thread included) per call, the median over rounds in which the three
modes take turns. "inside" runs the calls under one parent span, with a batch processor and an
exporter that drops what it is given: the SDK's whole cost, none of a network's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ragplatform.backends.redis_connection import connect_redis
from ragplatform.core import tracing, tracing_state
from tests.support.servers import PgBouncerServer, PostgresServer, RedisServer, fresh_database, running

MODES = ("off", "on, outside a trace", "on, inside a trace")


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _switch(mode: str) -> AbstractContextManager[Any]:
    """Set tracing for `mode`; return the context the calls run in."""
    tracing.disable_tracing()
    if mode == MODES[0]:
        return nullcontext()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    tracing.enable_tracing(provider)
    return tracing_state.tracer().start_as_current_span("parent") if mode == MODES[2] else nullcontext()


Call = Callable[[], Awaitable[object]]


async def _cpu_per_call(call: Call, calls: int, context: AbstractContextManager[Any]) -> float:
    start = time.process_time()
    with context:
        for _ in range(calls):
            await call()
    tracing.flush_traces()  # the export thread's share is counted, not left for the next mode
    return (time.process_time() - start) / calls * 1e6


async def measure(name: str, call: Call, calls: int, rounds: int) -> None:
    await _cpu_per_call(call, calls // 4, nullcontext())  # warm up
    figures: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            figures[mode].append(await _cpu_per_call(call, calls, _switch(mode)))
    tracing.disable_tracing()
    off = statistics.median(figures[MODES[0]])
    cells = [f"{mode} {statistics.median(values):6.1f} µs" for mode, values in figures.items()]
    added = statistics.median(figures[MODES[2]]) - off
    print(f"{name:<22} " + " | ".join(cells) + f" | span adds {added:5.1f} µs ({added / off:+.0%})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with (
        running(PostgresServer()) as postgres,
        running(PgBouncerServer(postgres)) as bouncer,
        fresh_database(postgres, bouncer) as database,
        running(RedisServer()) as redis_server,
    ):
        # one connection, as the store's pool hands out (no statement cache through PgBouncer);
        # a bare pool would add its reset query (one more statement) to every call
        connection = await asyncpg.connect(database.bouncer_url, statement_cache_size=0)
        client = connect_redis(redis_server.url)
        await client.set("bench:key", "value")
        try:
            print(f"CPU per call, median of {args.rounds} rounds of {args.calls} sequential calls")
            calls, rounds = args.calls, args.rounds
            await measure("SQL via PgBouncer", lambda: connection.fetchval("SELECT $1::int", 1), calls, rounds)
            await measure("Redis GET", lambda: client.get("bench:key"), calls, rounds)
        finally:
            await client.aclose()
            await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
