"""The kopf handlers: thin adapters from kopf's callbacks to `Reconciler`.

`build_registry(config)` returns a fresh registry holding every handler, so the operator's
entry point and the tests run exactly the same handlers with their own intervals. The
`Reconciler` (API client, queue reader) travels in kopf's memo as `memo.reconciler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

import kopf

from ragplatform_operator import API_GROUP, API_VERSION, PLURAL
from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.reconcile import EventEmitter, Reconciler, memory_of

# Bounds a retry after a failed apply (the API server or RBAC); the timer also retries.
_APPLY_RETRY_DELAY_SECONDS = 15


def _emitter(body: kopf.Body) -> EventEmitter:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return emit


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler = memo.get("reconciler")
    if not isinstance(reconciler, Reconciler):
        raise RuntimeError("the operator was started without a Reconciler in its memo (see main.py)")
    return reconciler


async def _unless_stopped(stopped: kopf.DaemonStopped, work: Awaitable[object]) -> None:
    """Run a timer's pass, abandoning it when the operator stops.

    kopf does not cancel a running timer on exit (it waits, then orphans it); a pass is
    level-based, so dropping it half-way is harmless: the next operator process redoes it.
    """

    async def stop_requested() -> None:
        await stopped.wait()

    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop_requested())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled():
        task.result()  # re-raise a failure for kopf to log and retry


def configure_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf settings: timeouts, and our own names for the finalizer and the progress records."""
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = config.watch_server_timeout_seconds
    settings.watching.client_timeout = config.watch_client_timeout_seconds
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = config.request_timeout_seconds
    # Events are posted explicitly (create, repair, scale, invalid spec, queue unreachable);
    # only kopf's own error logs (a handler that failed) also become Events, so no duplicates.
    settings.posting.level = logging.ERROR


def build_registry(config: OperatorConfig, *, login_via_client: bool = True) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator.

    `login_via_client` registers kopf's login through the `kubernetes` client's configuration
    (in-cluster or kubeconfig); tests pass False and register a login to their emulator.
    """
    registry = kopf.OperatorRegistry()
    resource = (API_GROUP, API_VERSION, PLURAL)
    if login_via_client:
        kopf.on.login(registry=registry)(kopf.login_via_client)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, config)

    @kopf.on.cleanup(registry=registry)
    async def close_clients(memo: kopf.Memo, **_: Any) -> None:
        reconciler = memo.get("reconciler")
        if isinstance(reconciler, Reconciler):
            await reconciler.queue_reader.aclose()

    @kopf.on.probe(id="reconciler", registry=registry)
    def reconciler_present(memo: kopf.Memo, **_: Any) -> bool:
        return isinstance(memo.get("reconciler"), Reconciler)

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    async def reconcile_on_change(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
        report = await _reconciler(memo).reconcile(body, memory_of(memo), _emitter(body), logger, apply_all=True)
        if report.spec_error:
            # Recorded in status and as an Event; retrying cannot help until the spec changes.
            raise kopf.PermanentError(report.spec_error)
        if report.apply_error:
            raise kopf.TemporaryError(report.apply_error, delay=_APPLY_RETRY_DELAY_SECONDS)

    @kopf.timer(*resource, registry=registry, interval=config.reconcile_interval_seconds)
    async def repair_drift(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
        # `stopped` comes through **kwargs: kopf's TimerFn protocol does not declare it.
        work = _reconciler(memo).reconcile(body, memory_of(memo), _emitter(body), logger, apply_all=False)
        await _unless_stopped(kwargs["stopped"], work)

    @kopf.timer(*resource, registry=registry, interval=config.autoscale_tick_seconds)
    async def autoscale_workers(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
        work = _reconciler(memo).autoscale(body, memory_of(memo), _emitter(body), logger)
        await _unless_stopped(kwargs["stopped"], work)

    return registry
