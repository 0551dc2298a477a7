"""What the platform's server interceptor chain adds to a call, in server CPU, against a bare
grpc.aio server in the same run — and, with `--without`, what each interceptor adds.

A server process on `--server-cpu` serves an echo (raw bytes, as bench/hop_floor.py's: a unary
method, and a server-streaming one sending `--messages` messages, the shape of Search and of
Generate) with one of these chains:

* `bare`: no interceptor — grpc.aio's own cost, the floor;
* `chain`: an internal service's chain as `core.server.build_interceptors` builds it (admission,
  access log, metrics, error mapping, internal token, deadline, request decoding);
* `-Name`: that chain without the interceptor (or fused scope) whose class is `Name`.

A client process on `--client-cpu` keeps `--concurrency` calls going, each with what the gateway
sends an internal service (request id, tenant, internal token) and a deadline. The server logs at
`--log-level` (default `warning`, as the ask bench runs the services: no access-log line is written). Kinds are measured
in rounds, alternating, so a shared machine's drift falls on all of them alike.

    python bench/server_chain_cost.py [--calls 4000] [--rounds 3] [--without AccessLogInterceptor]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hop_floor import SERVICE, STREAM, UNARY, UNARY_PAYLOAD, echo_stream, echo_unary, identity
from bench.process_cpu import process_cpu_seconds
from ragplatform.core.context import INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, TENANT_HEADER
from ragplatform.core.event_loop import run as run_loop
from ragplatform.core.interceptors.base import ScopeChain
from ragplatform.core.logging import configure_logging
from ragplatform.core.server import ServiceApp, build_interceptors
from ragplatform.core.settings import CommonSettings, load_settings

TOKEN = "bench-internal-token"


def _no_lifespan() -> Any:
    raise AssertionError("the bench builds the interceptors only")


def interceptors(kind: str) -> list[Any]:
    if kind == "bare":
        return []
    settings = load_settings(CommonSettings, internal_token=TOKEN)
    app = ServiceApp("bench", lifespan=_no_lifespan, internal=True)
    chain = build_interceptors(app, settings)
    if kind == "chain":
        return chain
    dropped = kind.removeprefix("-")
    kept: list[Any] = []
    for interceptor in chain:
        if isinstance(interceptor, ScopeChain):
            parts = [p for p in interceptor.parts if type(p).__name__ != dropped]
            kept.append(ScopeChain(parts))
        elif type(interceptor).__name__ != dropped:
            kept.append(interceptor)
    return kept


def _serve(kind: str, log_level: str, port_out: Any) -> None:
    configure_logging(log_level)

    async def main() -> None:
        server = grpc.aio.server(interceptors=interceptors(kind))
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(echo_unary, identity, identity),
            "Stream": grpc.unary_stream_rpc_method_handler(echo_stream, identity, identity),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port_out.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    run_loop(main(), "uvloop")


def _drive(port: int, method: str, calls: int, concurrency: int, messages: int, out: Any) -> None:
    async def main() -> None:
        metadata = ((REQUEST_ID_HEADER, "bench-request"), (TENANT_HEADER, "acme"), (INTERNAL_TOKEN_HEADER, TOKEN))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary(UNARY, identity, identity)
            stream = channel.unary_stream(STREAM, identity, identity)

            async def worker(n: int) -> None:
                for _ in range(n):
                    if method == "unary":
                        await unary(UNARY_PAYLOAD, metadata=metadata, timeout=30)
                    else:
                        async for _m in stream(str(messages).encode(), metadata=metadata, timeout=30):
                            pass

            await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        out.put(True)

    run_loop(main(), "uvloop")


def measure(
    kind: str, calls: int, concurrency: int, messages: int, log_level: str, server_cpu: int, client_cpu: int
) -> dict[str, float]:
    """ms of server CPU per call, by method."""
    context = multiprocessing.get_context("spawn")
    port_out, out = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(kind, log_level, port_out))
    server.start()
    assert server.pid is not None
    os.sched_setaffinity(server.pid, {server_cpu})
    port = port_out.get(timeout=30)
    figures: dict[str, float] = {}
    try:
        for method in ("warm", "unary", "stream"):
            n = 400 if method == "warm" else calls
            client = context.Process(
                target=_drive, args=(port, "unary" if method == "warm" else method, n, concurrency, messages, out)
            )
            before = process_cpu_seconds(server.pid)
            client.start()
            assert client.pid is not None
            os.sched_setaffinity(client.pid, {client_cpu})
            out.get(timeout=300)
            client.join()
            figures[method] = 1000 * (process_cpu_seconds(server.pid) - before) / n
    finally:
        server.terminate()
        server.join(timeout=30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--messages", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-level", default="warning", help="the services' level in the ask bench (default warning)")
    parser.add_argument("--without", action="append", default=[], help="also measure the chain without this class")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    kinds = ["bare", "chain", *(f"-{name}" for name in args.without)]
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            results[kind].append(
                measure(
                    kind, args.calls, args.concurrency, args.messages, args.log_level, args.server_cpu, args.client_cpu
                )
            )
    for kind in kinds:
        unary = [r["unary"] for r in results[kind]]
        stream = [r["stream"] for r in results[kind]]
        print(
            f"{kind:28s} server ms/call  unary {' '.join(f'{u:.3f}' for u in unary)} (median "
            f"{statistics.median(unary):.3f})  stream of {args.messages} {' '.join(f'{s:.3f}' for s in stream)} "
            f"(median {statistics.median(stream):.3f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
