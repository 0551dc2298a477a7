"""What one refusal costs a grpc.aio process in CPU, against the least grpc.aio can do per call.

A server process on `--server-cpu` answers every call to a server-streaming method (an Ask's
shape) with RESOURCE_EXHAUSTED and a retry-after hint, three ways, one after another:

* `bare`: no interceptor; the method's handler aborts at once — the floor: grpc.aio's own cost of
  accepting a call and sending its status;
* `admission`: the platform's `AdmissionInterceptor` (limit reached) alone, refusing before the
  handler is built (`early_refusal`: the request is not read);
* `chain`: the gateway's whole interceptor chain as `core.server.build_interceptors` builds it
  from the gateway's settings (its API-key check stood in for by an interceptor that fails if a
  refused call reaches it), the admission limit reached.

A client process on `--client-cpu` keeps `--concurrency` calls going until `--calls` have ended,
each with the metadata the ask bench's clients send (a bearer key, an `x-request-start` stamp) and
a deadline;
the server's CPU time (from /proc) over the calls gives ms of CPU per refusal.

    python bench/refusal_cost.py [--calls 6000] [--rounds 2] [--rate 240]

Flat out, many calls share each wake-up of the server's loop; `--rate` paces them as the ask
bench's refusals arrive (~240/s at 3x), which is what a refusal costs there.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.process_cpu import process_cpu_seconds
from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.error_mapping import retry_after_from
from ragplatform.core.event_loop import run as run_loop
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from ragplatform.core.interceptors.base import ScopedInterceptor
from ragplatform.core.request_start import REQUEST_START_HEADER, request_start_value
from ragplatform.core.server import ServiceApp, build_interceptors
from ragplatform.core.settings import GatewaySettings, load_settings

METHOD = "/bench.Refuse/Ask"
PENDING = [("grpc.server.max_pending_requests", 10_000), ("grpc.server.max_pending_requests_hard_limit", 10_000)]
KINDS = ("bare", "admission", "chain")


async def _abort(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    context.set_trailing_metadata((("retry-after-seconds", "1"),))
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "at capacity")
    yield b""  # pragma: no cover


class _NeverAdmitted(ScopedInterceptor):
    """Stands in for an interceptor inside the chain that a refused call never reaches."""

    def scope(self, method: str, context: Any) -> Any:
        raise AssertionError("a refused call entered a scope")


def _interceptors(kind: str) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    if kind == "bare":
        return []
    admission = AdmissionInterceptor("gateway", LimitPolicy(ceiling=1, lag_target_seconds=0.0), 1.0)
    admission.in_flight = 1  # the limit is reached: every call is refused
    if kind == "admission":
        return [admission]
    # The gateway's chain as the server builds it, its API-key check (its own interceptor) stood in for.
    settings = load_settings(GatewaySettings)
    timeout = settings.ask_timeout_seconds
    gateway = ServiceApp("gateway", lifespan=_no_lifespan, internal=False, max_call_seconds=timeout)
    return build_interceptors(gateway, settings, own=[_NeverAdmitted()], admission=admission)


def _no_lifespan() -> Any:
    raise AssertionError("the bench builds the gateway's interceptors only, it never starts the gateway")


def _serve(kind: str, port_out: Any) -> None:
    async def main() -> None:
        server = grpc.aio.server(interceptors=_interceptors(kind), options=PENDING)
        handler = grpc.unary_stream_rpc_method_handler(_abort)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Refuse", {"Ask": handler}),))
        port_out.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()  # until the bench terminates this process

    run_loop(main(), "uvloop")


def _drive(port: int, calls: int, concurrency: int, rate: float, out: Any) -> None:
    async def main() -> None:
        hinted = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            ask = channel.unary_stream(METHOD)
            remaining = calls

            async def one(paced: bool = False) -> None:
                nonlocal remaining, hinted
                while remaining > 0 or paced:
                    remaining -= 1
                    # What the ask bench's clients send: a bearer key and a start stamp.
                    stamped = (("authorization", f"Bearer {'k' * 43}"), (REQUEST_START_HEADER, request_start_value()))
                    try:
                        async for _ in ask(b"q" * 200, metadata=stamped, timeout=60):
                            pass
                    except grpc.aio.AioRpcError as exc:
                        hinted += exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and (
                            retry_after_from(exc.trailing_metadata()) is not None
                        )
                    if paced:
                        return

            if not rate:
                await asyncio.gather(*(one() for _ in range(concurrency)))
            else:  # one call every 1/rate s, as arrivals at a modest rate come: few calls per wake-up
                began, tasks = time.monotonic(), []
                for i in range(calls):
                    await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
                    tasks.append(asyncio.create_task(one(paced=True)))
                await asyncio.gather(*tasks)
        out.put(hinted)

    run_loop(main(), "uvloop")


def measure(
    kind: str, calls: int, concurrency: int, rate: float, server_cpu: int, client_cpu: int
) -> tuple[float, float, int]:
    """(ms of server CPU per refusal, refusals/s, refusals with a hint)."""
    context = multiprocessing.get_context("spawn")
    port_out, out = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(kind, port_out))
    server.start()
    assert server.pid is not None
    os.sched_setaffinity(server.pid, {server_cpu})
    port = port_out.get(timeout=30)
    _warm = context.Process(target=_drive, args=(port, 200, 20, 0.0, out))
    _warm.start()
    out.get(timeout=60)
    _warm.join()
    client = context.Process(target=_drive, args=(port, calls, concurrency, rate, out))
    before, began = process_cpu_seconds(server.pid), time.monotonic()
    client.start()
    assert client.pid is not None
    os.sched_setaffinity(client.pid, {client_cpu})
    hinted: int = out.get(timeout=300)
    used, elapsed = process_cpu_seconds(server.pid) - before, time.monotonic() - began
    client.join()
    server.terminate()
    server.join(timeout=30)
    return 1000 * used / calls, calls / elapsed, hinted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="calls a second, one at a time (default 0: --concurrency at once)"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        for kind in KINDS:
            ms, rate, hinted = measure(kind, args.calls, args.concurrency, args.rate, args.server_cpu, args.client_cpu)
            print(
                f"round {round_}  {kind:9s}  {ms:.3f} ms of server CPU per refusal  {rate:7.0f} refusals/s  "
                f"{hinted} of {args.calls} with a retry hint",
                flush=True,
            )


if __name__ == "__main__":
    main()
