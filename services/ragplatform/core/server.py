"""One `serve()` for every service: grpc.aio with health, reflection, interceptors, metrics and a
graceful drain on SIGTERM (health -> NOT_SERVING, in-flight calls finish within the grace period).

A service is described by a `ServiceApp`: its name and an async context manager (its lifespan)
that opens its resources (stores, channels) for the life of the server and yields its `Wiring`:
a function that registers its servicers on a server (returning the full names of the services
it added), and the interceptors of its own that need those resources (e.g. the gateway's API-key
check, which needs the store). Each lifespan opens its resources inside one `AsyncExitStack`, so
a start that fails part-way closes exactly what it had opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.garbage_collection import settle_after_startup
from ragplatform.core.health import IdentifyingHealthServicer
from ragplatform.core.interceptors.access_log import AccessLogInterceptor
from ragplatform.core.interceptors.admission import AdmissionInterceptor, AdmissionRate
from ragplatform.core.interceptors.auth import InternalTokenInterceptor
from ragplatform.core.interceptors.base import fuse_scopes
from ragplatform.core.interceptors.deadlines import DeadlineInterceptor
from ragplatform.core.interceptors.decoding import RequestDecodingInterceptor
from ragplatform.core.interceptors.errors import ErrorMappingInterceptor
from ragplatform.core.interceptors.metrics import MetricsInterceptor
from ragplatform.core.latency_budget import LatencyBudget
from ragplatform.core.metrics import start_metrics_server
from ragplatform.core.settings import CommonSettings, admission_burst_for, admission_lag_target, require_internal_auth
from ragplatform.core.tracing import server_interceptors as tracing_interceptors

log = structlog.get_logger("ragplatform.server")

# Registers servicers on the server; returns the fully qualified service names it added.
Registrar = Callable[[grpc.aio.Server], Sequence[str]]
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_PENDING_CALLS = 10_000
_REPORTS: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Wiring:
    """What a service's opened resources give its server."""

    register: Registrar
    # The service's own server interceptors (e.g. the gateway's API-key check), run inside the
    # common ones.
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = ()


@dataclass
class ServiceApp:
    name: str
    # Entered before the server starts, exited after it stops; yields the wiring.
    lifespan: Callable[[], AbstractAsyncContextManager[Wiring]]
    # Whether the internal-token check applies (not for the public gateway).
    internal: bool = True
    # Cap on any call's duration when the client sets no (or a longer) deadline.
    max_call_seconds: float | None = None
    # Background tasks run while serving (e.g. the worker loop); cancelled/drained on stop.
    background: Sequence[Callable[[asyncio.Event], Any]] = field(default_factory=tuple)
    # The methods RAG_ADMISSION_PACE_SECONDS paces (full names), the calls whose time it is; empty: all.
    paced_methods: frozenset[str] = frozenset()


@dataclass
class RunningService:
    app: ServiceApp
    server: grpc.aio.Server
    port: int
    metrics_port: int
    health: HealthServicer
    stopping: asyncio.Event
    _exit: contextlib.AsyncExitStack
    _tasks: list[asyncio.Task[Any]]
    # Samples the event loop's lag for admission control until the server has stopped.
    _lag_watch: asyncio.Task[None] | None = None
    # The server's admission control (its limit and state, for tests and diagnostics).
    admission: AdmissionInterceptor | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def failure(self) -> str:
        """Wait until a background loop of the service (such as the worker's) ends on its own, and
        say why; never returns while the service runs as it should."""
        if not self._tasks:
            await asyncio.Event().wait()
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                return f"{self.app.name}: its background work failed ({task.exception()!r})"
        return f"{self.app.name}: its background work ended unexpectedly"

    async def stop(self, grace: float, drain_delay: float = 0.0) -> None:
        """Drain: NOT_SERVING (still taking calls for `drain_delay`), stop background work, let
        in-flight calls finish within `grace`, then close."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        await self.health.enter_graceful_shutdown()
        log.info("draining", service=self.app.name, grace_seconds=grace, drain_delay_seconds=drain_delay)
        if drain_delay > 0:
            await asyncio.sleep(drain_delay)
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.server.stop(grace)
        if self._lag_watch is not None:
            self._lag_watch.cancel()
            await asyncio.gather(self._lag_watch, return_exceptions=True)
        await self._exit.aclose()
        log.info("stopped", service=self.app.name)


def build_admission(app: ServiceApp, settings: CommonSettings) -> AdmissionInterceptor:
    # The public gateway is the one service without the internal-token check: the edge. It never
    # marks its answers congested (its callers are clients, which would not read the mark).
    policy = LimitPolicy(
        ceiling=settings.max_in_flight,
        lag_target_seconds=admission_lag_target(settings, edge=not app.internal),
        mark_lag_seconds=settings.admission_mark_lag_seconds if app.internal else 0.0,
        budget=LatencyBudget(settings.admission_latency_target_seconds),
    )
    pace = settings.admission_pace_seconds
    rate = AdmissionRate(pace, admission_burst_for(settings.max_in_flight), app.paced_methods) if pace > 0 else None
    return AdmissionInterceptor(app.name, policy, settings.admission_retry_after_seconds, rate)


def build_interceptors(
    app: ServiceApp,
    settings: CommonSettings,
    own: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    admission: AdmissionInterceptor | None = None,
) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    chain: list[grpc.aio.ServerInterceptor[Any, Any]] = [
        *tracing_interceptors(),  # outermost, so the access log line carries the call's trace id
        admission or build_admission(app, settings),
        AccessLogInterceptor(trust_tenant_header=app.internal),
        MetricsInterceptor(),
        ErrorMappingInterceptor(),
    ]
    if app.internal and settings.internal_token is not None:
        chain.append(InternalTokenInterceptor(settings.internal_token.get_secret_value()))
    chain.extend(own)
    chain.append(DeadlineInterceptor(app.max_call_seconds))
    # Innermost: undecodable requests become InvalidArgument inside every scope above.
    chain.append(RequestDecodingInterceptor())
    return fuse_scopes(chain)


async def start_service(app: ServiceApp, settings: CommonSettings) -> RunningService:
    """Start the service and return once it is SERVING (port 0 picks a free port). Raises
    `SettingsError` without an internal token (unless RAG_INSECURE_INTERNAL_CALLS)."""
    require_internal_auth(settings)
    exit_stack = contextlib.AsyncExitStack()
    try:
        wiring = await exit_stack.enter_async_context(app.lifespan())
        admission = build_admission(app, settings)
        server = grpc.aio.server(
            interceptors=build_interceptors(app, settings, wiring.interceptors, admission),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                # Calls gRPC has received but this process has not yet picked up. By default,
                # once 1,000 wait, gRPC CANCELS those that waited over a second: that was the
                # mass CANCELLED at 5,500 streams (reproduced with a bare grpc.aio echo server).
                # With this bound both soft and hard, nothing is cancelled; past it new calls are
                # refused at once (RESOURCE_EXHAUSTED), and admission control (which sees every
                # call it picks up) refuses the excess with a retry-after hint.
                ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
                ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
            ],
        )
        service_names = list(wiring.register(server))
        health_servicer = IdentifyingHealthServicer(app.name)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            [
                *service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        try:
            port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        except RuntimeError:  # grpc's "Failed to bind": say which setting to change
            port = 0
        if port == 0:
            raise OSError(
                f"could not bind {settings.grpc_host}:{settings.grpc_port}; is the port in use? "
                "Stop what holds it or choose another port (RAG_GRPC_PORT; `ragplatform dev --port-base`)"
            )
        await server.start()
    except BaseException:
        await exit_stack.aclose()
        raise
    metrics_port = 0
    if settings.metrics_enabled:
        host = "127.0.0.1" if settings.grpc_host in ("127.0.0.1", "localhost") else "0.0.0.0"
        metrics_port = start_metrics_server(host, settings.metrics_port)
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    lag_watch = asyncio.create_task(admission.watch_event_loop())
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(job(stopping)) for job in app.background]
    for task in tasks:
        task.add_done_callback(lambda t: _background_ended(t, app.name, stopping, health_servicer))
    log.info("serving", service=app.name, port=port, metrics_port=metrics_port)
    return RunningService(
        app, server, port, metrics_port, health_servicer, stopping, exit_stack, tasks, lag_watch, admission
    )


def _background_ended(
    task: asyncio.Task[Any], service: str, stopping: asyncio.Event, health_servicer: HealthServicer
) -> None:
    """A background loop (e.g. a worker) must only end on stop. If it dies, say so and report
    NOT_SERVING, so that the liveness probe restarts the process instead of it idling forever."""
    if stopping.is_set() or task.cancelled():
        return
    exc = task.exception()
    log.error("background work ended unexpectedly; reporting NOT_SERVING", service=service, exc_info=exc)
    report = asyncio.get_running_loop().create_task(health_servicer.enter_graceful_shutdown())
    _REPORTS.add(report)  # keep a reference until it ran (the loop holds tasks only weakly)
    report.add_done_callback(_REPORTS.discard)


async def serve(app: ServiceApp, settings: CommonSettings) -> None:
    """Run until SIGTERM or SIGINT, then drain within the grace period."""
    running = await start_service(app, settings)
    settle_after_startup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    terminated = asyncio.create_task(running.server.wait_for_termination())
    await asyncio.wait({waiter, terminated}, return_when=asyncio.FIRST_COMPLETED)
    await running.stop(settings.grace_period_seconds, settings.drain_delay_seconds)
    for task in (waiter, terminated):
        task.cancel()


@contextlib.asynccontextmanager
async def no_resources(register: Registrar) -> AsyncIterator[Wiring]:
    """A lifespan for a service that opens nothing."""
    yield Wiring(register)
