"""The kopf handlers: thin adapters from kopf's callbacks to `Reconciler`.

`build_registry(config)` returns a fresh registry holding every handler, so the operator's
entry point and the tests run exactly the same handlers with their own intervals. The
`Reconciler` (API client, queue reader) travels in kopf's memo as `memo.reconciler`.

Three things run a reconcile pass: a spec change (create/update/resume), an event on a child
(deleted, or changed by someone else: `child_events`), which wakes the owner's repair loop
(a daemon, rate-limited per owner: `repair_requests`), and the drift timer as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import kopf

from ragplatform_operator import API_GROUP, API_VERSION, PLURAL
from ragplatform_operator.apply import MANAGED_BY, MANAGED_BY_LABEL
from ragplatform_operator.child_events import owner_uid, reconcile_reason
from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.kube_api import FIELD_MANAGER, WATCHED_KINDS
from ragplatform_operator.reconcile import EventEmitter, Reconciler, memory_of
from ragplatform_operator.redaction import redact_log_records, redact_secrets
from ragplatform_operator.repair_requests import RepairBackoff
from ragplatform_operator.shutdown import quiet_watch_stream_closing

# Bounds a retry after a failed apply (the API server or RBAC); the timer also retries.
_APPLY_RETRY_DELAY_SECONDS = 15
# After the first child event, wait this long for the rest of a burst (e.g. several children
# deleted by one `kubectl delete`), so that one pass repairs them all.
_REPAIR_COALESCE_SECONDS = 0.2
# How long a timer or daemon may take to return once told the operator stops.
_EXIT_TIMEOUT_SECONDS = 5.0

_T = TypeVar("_T")


def _emitter(body: kopf.Body) -> EventEmitter:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=redact_secrets(message))

    return emit


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler = memo.get("reconciler")
    if not isinstance(reconciler, Reconciler):
        raise RuntimeError("the operator was started without a Reconciler in its memo (see main.py)")
    return reconciler


async def _unless_stopped(
    stopped: kopf.DaemonStopped, work: Awaitable[_T], reconciler: Reconciler | None = None
) -> _T | None:
    """Run a pass of a timer or daemon, abandoning it when the operator stops (then None).

    kopf does not cancel a running timer on exit (it waits, then orphans it), and cancels a
    daemon that has not returned in time ("is cancelled", a warning); a pass is level-based,
    so dropping it half-way is harmless: the next operator process redoes it. A pass that
    failed because the operator closed `reconciler`'s clients under it (kopf can leave a timer
    running past its cleanup handler) was abandoned the same way: not an error.
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
    if task.cancelled():
        return None
    if reconciler is not None and reconciler.closed and task.exception() is not None:
        logging.getLogger(__name__).debug(f"a pass abandoned as the operator stops: {task.exception()}")
        return None
    return task.result()  # re-raise a failure for kopf to log and retry


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
    # On exit, give every timer and daemon time to see its stop flag and return (they abandon a
    # pass at once). kopf's default (10 zero-time loop cycles) is too short for a pass in flight:
    # it then cancels the daemons ("is cancelled") and leaves the timers running, orphaned, while
    # the cleanup handler closes the API client under them.
    settings.background.instant_exit_timeout = _EXIT_TIMEOUT_SECONDS
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
        quiet_watch_stream_closing(asyncio.get_running_loop())
        redact_log_records()

    @kopf.on.cleanup(registry=registry)
    async def close_clients(memo: kopf.Memo, **_: Any) -> None:
        reconciler = memo.get("reconciler")
        if isinstance(reconciler, Reconciler):
            await reconciler.aclose()

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

    def repair_reason(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> tuple[str, str] | None:
        """(owner uid, why) when a child's event calls for a repair of its RagPlatform."""
        uid = owner_uid(body)
        if uid is None:
            return None
        reason = reconcile_reason(type, body, _reconciler(memo).api.own_writes, FIELD_MANAGER)
        return None if reason is None else (uid, reason)

    def needs_repair(**kwargs: Any) -> bool:
        # A filter, so that kopf calls (and logs) the handler only for events that matter.
        return repair_reason(**kwargs) is not None

    async def request_repair(memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
        found = repair_reason(memo=memo, **kwargs)
        if found is not None:
            uid, reason = found
            if _reconciler(memo).repair_requests.request(uid, reason):
                logger.info(f"repair of the owning RagPlatform requested: {reason}")

    for child in WATCHED_KINDS:
        kopf.on.event(
            child.api_version,
            child.plural,
            id=f"watch-{child.plural}",
            labels={MANAGED_BY_LABEL: MANAGED_BY},
            when=needs_repair,
            registry=registry,
        )(request_repair)

    @kopf.daemon(*resource, registry=registry, cancellation_timeout=5.0)
    async def repair_on_child_events(
        body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        reconciler = _reconciler(memo)
        backoff = RepairBackoff()
        with reconciler.repair_requests.mailbox(str(body["metadata"]["uid"])) as mailbox:
            while not stopped:
                await _unless_stopped(stopped, mailbox.wakeup.wait())
                if reconciler.closed:
                    return  # the operator stops (a daemon kopf spawned again after stopping them)
                delay = backoff.delay(time.monotonic())
                if delay:
                    logger.warning(
                        f"its objects keep being changed by someone else ({'; '.join(mailbox.reasons)}); "
                        f"the next repair waits {delay:.0f} s. Find who changes them (kubectl get -o yaml "
                        "--show-managed-fields) and change the RagPlatform instead."
                    )
                await _unless_stopped(stopped, asyncio.sleep(_REPAIR_COALESCE_SECONDS + delay))
                if stopped or reconciler.closed:
                    break
                logger.info(f"reconciling after events on its objects: {'; '.join(mailbox.take())}")
                work = reconciler.reconcile(body, memory_of(memo), _emitter(body), logger, apply_all=False)
                try:
                    # A pass in flight when the operator stops is abandoned at once (not cancelled
                    # by kopf after the exit timeout, which it reports as a warning).
                    report = await _unless_stopped(stopped, work, reconciler)
                except Exception:  # the loop must outlive one bad pass; the timer retries too
                    logger.exception("a repair pass failed")
                    report = None
                if stopped:
                    break
                backoff.passed(time.monotonic(), repaired=report is None or bool(report.changes))

    @kopf.timer(*resource, registry=registry, interval=config.reconcile_interval_seconds)
    async def repair_drift(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
        # `stopped` comes through **kwargs: kopf's TimerFn protocol does not declare it.
        reconciler = _reconciler(memo)
        if reconciler.closed:
            return  # a timer kopf left running after the cleanup handler closed the clients
        work = reconciler.reconcile(body, memory_of(memo), _emitter(body), logger, apply_all=False)
        await _unless_stopped(kwargs["stopped"], work, reconciler)

    @kopf.timer(*resource, registry=registry, interval=config.autoscale_tick_seconds)
    async def autoscale_workers(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
        reconciler = _reconciler(memo)
        if reconciler.closed:
            return
        work = reconciler.autoscale(body, memory_of(memo), _emitter(body), logger)
        await _unless_stopped(kwargs["stopped"], work, reconciler)

    return registry
