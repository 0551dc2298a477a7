"""The level-based reconciliation of one RagPlatform, and the queue-depth autoscaling pass.

`Reconciler.reconcile` is one idempotent pass from the current state, in named steps that
return early: parse the spec -> render the children -> apply them (and prune) -> write the
status. kopf runs it on create/update/resume and on a timer, so a deleted or edited child is
repaired and a restarted operator carries on. `Reconciler.autoscale` reads the queue depth,
asks the pure autoscaler for a decision and applies the worker count.

Both passes of one RagPlatform hold its `PlatformMemory.lock`, so they never interleave. The
autoscaler's state lives in that memory and is persisted in `status.autoscaler.state`, from
where a restarted operator picks it up (a restart never resets the worker count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ragplatform_operator.apply import (
    ApplyResult,
    ChangeAction,
    ChildChange,
    ChildKey,
    apply_children,
    contains,
    key_of,
    list_children,
)
from ragplatform_operator.autoscaler import ScalingDecision, ScalingPolicy, ScalingState, decide
from ragplatform_operator.builders import build_children, worker_replicas_in_force
from ragplatform_operator.builders.internal_token import (
    TOKEN_KEY,
    build_internal_token_secret,
    internal_token_ref,
    new_internal_token,
    token_fingerprint,
)
from ragplatform_operator.builders.metadata import Owner
from ragplatform_operator.kube_api import POD_MONITOR, POD_MONITOR_CRD, KubeApi, KubeApiError
from ragplatform_operator.queue_depth import QueueDepthReader, QueueDepthUnavailable
from ragplatform_operator.redaction import redact_secrets, redact_strings
from ragplatform_operator.repair_requests import RepairRequests
from ragplatform_operator.spec import PlatformSpec, SpecError, check_platform_name, parse_spec
from ragplatform_operator.status import (
    COMPONENT_BY_LABEL,
    COMPONENTS,
    QueueObservation,
    ReconcileOutcome,
    WorkloadObservation,
    build_status,
    observe_workload,
    queue_observation,
)
from ragplatform_operator.status_model import PlatformStatus, ScalingDecisionRecord, StoredVectors
from ragplatform_operator.vector_data import orphaning_changes, stored_vectors_of

# emit(type, reason, message): posts an Event on the RagPlatform (kopf.event in production).
EventEmitter = Callable[[str, str, str], None]
_COMPONENT_LABEL = "app.kubernetes.io/component"
_WORKLOAD_KINDS = ("Deployment", "StatefulSet")
_MEMORY_KEY = "ragplatform"


@dataclass
class PlatformMemory:
    """What the operator keeps in memory about one RagPlatform between passes."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    scaling: ScalingState | None = None
    queue: QueueObservation | None = None
    last_poll: float | None = None


def memory_of(memo: MutableMapping[str, Any]) -> PlatformMemory:
    """The `PlatformMemory` in kopf's per-object memo, created on first use."""
    memory = memo.get(_MEMORY_KEY)
    if not isinstance(memory, PlatformMemory):
        memory = PlatformMemory()
        memo[_MEMORY_KEY] = memory
    return memory


@dataclass(frozen=True)
class PlatformRef:
    """The identity and last-known status of the RagPlatform a pass works on."""

    name: str
    namespace: str
    uid: str
    generation: int
    status: Mapping[str, Any]  # as stored: the write is a merge patch against it
    raw_spec: Mapping[str, Any]

    @property
    def typed_status(self) -> PlatformStatus:
        return PlatformStatus.from_raw(self.status)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PlatformRef:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta.get("name")),
            namespace=str(meta.get("namespace")),
            uid=str(meta.get("uid")),
            generation=int(meta.get("generation") or 1),
            status=dict(body.get("status") or {}),
            raw_spec=dict(body.get("spec") or {}),
        )

    @property
    def spec_changed(self) -> bool:
        """True until this generation of the spec has been reconciled once."""
        return self.status.get("observedGeneration") != self.generation


@dataclass(frozen=True)
class PassReport:
    """How a reconcile pass ended: the changes made, or why it stopped early."""

    changes: tuple[ChildChange, ...] = ()
    spec_error: str | None = None
    apply_error: str | None = None


def _drop_nones(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    return value


class Reconciler:
    """Reconciles RagPlatforms through `api`, reading queue depths with `queue_reader`."""

    def __init__(
        self,
        api: KubeApi,
        queue_reader: QueueDepthReader,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.queue_reader = queue_reader
        # Filed by the child watchers, taken by each RagPlatform's repair loop (handlers.py).
        self.repair_requests = RepairRequests()
        self._clock = clock
        self._monotonic = monotonic
        # Set when the operator stops and the clients are closed: no pass may start after it.
        self.closed = False

    async def aclose(self) -> None:
        """Close the API client and the queue reader (the operator is stopping)."""
        self.closed = True
        self.repair_requests.close()
        await self.queue_reader.aclose()
        await self.api.aclose()

    # --- the reconcile pass ----------------------------------------------------------------

    async def reconcile(
        self,
        body: Mapping[str, Any],
        memory: PlatformMemory,
        emit: EventEmitter,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        *,
        apply_all: bool,
    ) -> PassReport:
        """One pass: parse -> render -> apply + prune -> status. Never raises for a bad spec."""
        async with memory.lock:
            platform = PlatformRef.from_body(body)

            # Step 1: a typed, validated spec, or a Degraded condition that says what to fix.
            spec_or_error = self._parse(platform)
            if isinstance(spec_or_error, str):
                await self._report_invalid_spec(platform, spec_or_error, emit)
                return PassReport(spec_error=spec_or_error)
            spec = spec_or_error

            # Step 1b: the generated internal token, when the spec names none (created when missing).
            try:
                fingerprint = await self._ensure_internal_token(platform, spec, emit)
            except KubeApiError as exc:
                message = f"creating the internal-token Secret failed: {exc}. The operator retries."
                await self._write_status(platform, {}, ReconcileOutcome(apply_error=message), memory)
                return PassReport(apply_error=message)

            # Step 3: apply what is missing or drifted (everything when asked), prune the rest.
            try:
                # Step 2: render every child (pure), add-ons only when the cluster has their CRD.
                pod_monitor_crd = await self.api.crd_installed(POD_MONITOR_CRD)
                children = build_children(
                    platform.name,
                    platform.namespace,
                    platform.uid,
                    spec,
                    self._worker_replicas(platform, memory, spec),
                    pod_monitor_crd=pod_monitor_crd,
                    token_fingerprint=fingerprint,
                )
                existing = await list_children(
                    self.api,
                    platform.namespace,
                    platform.name,
                    platform.uid,
                    optional=(POD_MONITOR,) if pod_monitor_crd else (),
                )
                result = await apply_children(
                    self.api, children, existing, apply_all=apply_all, spec_changed=platform.spec_changed
                )
            except KubeApiError as exc:
                if self.closed:  # the operator stopped and closed the client under this pass
                    logger.debug(f"a pass abandoned as the operator stops: {exc}")
                    return PassReport()
                message = (
                    f"applying the platform's objects failed: {exc}. The operator retries; if this persists, "
                    "check its RBAC permissions and the API server."
                )
                logger.warning(message)
                await self._write_status(platform, {}, ReconcileOutcome(apply_error=message), memory)
                return PassReport(apply_error=message)
            for change in result.changes:
                emit("Normal", change.action.value, change.message)

            # Step 4: status from the children's own status.
            workloads = _observe_workloads(spec, children, result)
            await self._write_status(platform, workloads, ReconcileOutcome(), memory, stored_vectors_of(spec))
            return PassReport(changes=tuple(result.changes))

    async def _ensure_internal_token(self, platform: PlatformRef, spec: PlatformSpec, emit: EventEmitter) -> str | None:
        """The fingerprint of the generated internal token, created when missing (a deleted
        Secret gets a new token: the tiers roll onto it); None when the spec names its own."""
        if spec.internal_token_secret_ref is not None:
            return None
        owner = Owner(name=platform.name, namespace=platform.namespace, uid=platform.uid)
        ref = internal_token_ref(owner, spec)
        try:
            return token_fingerprint(await self.api.read_secret_value(platform.namespace, ref.name, TOKEN_KEY))
        except KubeApiError as exc:
            if exc.status != 404:
                raise
        token = new_internal_token()
        await self.api.apply(build_internal_token_secret(owner, token))
        emit(
            "Normal",
            ChangeAction.CREATED.value,
            f"Created Secret {ref.name}: a generated internal token (every tier restarts onto it)",
        )
        return token_fingerprint(token)

    @staticmethod
    def _parse(platform: PlatformRef) -> PlatformSpec | str:
        """The typed spec, or why it cannot be applied: invalid, or it would orphan stored vectors."""
        try:
            check_platform_name(platform.name)
            spec = parse_spec(dict(platform.raw_spec))
        except SpecError as exc:
            return redact_secrets(str(exc))
        unsafe = orphaning_changes(spec, platform.typed_status.stored_vectors)
        if unsafe:
            return redact_secrets(
                "refused RagPlatform spec change:\n" + "\n".join(f"  {problem}" for problem in unsafe)
            )
        return spec

    async def _report_invalid_spec(self, platform: PlatformRef, message: str, emit: EventEmitter) -> None:
        previous = platform.typed_status
        degraded = previous.condition("Degraded")
        already_reported = (
            degraded is not None
            and (degraded.reason, degraded.message) == ("InvalidSpec", message)
            and previous.observed_generation == platform.generation
        )
        if not already_reported:
            emit("Warning", "InvalidSpec", message)
        await self._write_status(platform, {}, ReconcileOutcome(spec_error=message), None)

    @staticmethod
    def _worker_replicas(platform: PlatformRef, memory: PlatformMemory, spec: PlatformSpec) -> int:
        if memory.scaling is not None:
            return worker_replicas_in_force(spec, memory.scaling.replicas)
        autoscaler = platform.typed_status.autoscaler
        replicas = (autoscaler.state or {}).get("replicas") if autoscaler is not None else None
        return worker_replicas_in_force(spec, replicas if isinstance(replicas, int) else None)

    async def _write_status(
        self,
        platform: PlatformRef,
        workloads: Mapping[str, WorkloadObservation | None],
        outcome: ReconcileOutcome,
        memory: PlatformMemory | None,
        stored_vectors: StoredVectors | None = None,
    ) -> None:
        status = build_status(
            generation=platform.generation,
            workloads=workloads,
            outcome=outcome,
            queue=memory.queue if memory is not None else None,
            previous=platform.typed_status,
            now=self._clock(),
            stored_vectors=stored_vectors,
        ).to_patch()
        status = redact_strings(status)  # the last net: no credential from any message reaches status
        if contains(platform.status, _drop_nones(status)) and not _clears_something(platform.status, status):
            return  # nothing new: spare the API server a write and the watchers an event
        await self.api.patch_platform_status(platform.namespace, platform.name, status)

    # --- the autoscaling pass --------------------------------------------------------------

    async def autoscale(
        self,
        body: Mapping[str, Any],
        memory: PlatformMemory,
        emit: EventEmitter,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> ScalingDecision | None:
        """Read the queue depth when due, decide, apply the worker count, record it in status.

        Returns the decision, or None when nothing was decided (not due, fixed worker count,
        invalid spec, or the queue could not be read — which is recorded in status instead).
        """
        async with memory.lock:
            platform = PlatformRef.from_body(body)
            spec = self._parse(platform)
            if isinstance(spec, str):
                return None  # the reconcile pass reports the invalid spec
            scaling = spec.workers.queue_autoscaling
            if scaling is None:
                memory.queue, memory.scaling = QueueObservation(fixed_replicas=True), None
                return None
            now_tick = self._monotonic()
            if memory.last_poll is not None and now_tick - memory.last_poll < scaling.polling_interval_seconds:
                return None
            memory.last_poll = now_tick

            policy = ScalingPolicy(
                min_replicas=scaling.min_replicas,
                max_replicas=scaling.max_replicas,
                target_per_replica=scaling.target_queue_depth_per_replica,
                activation_queue_depth=scaling.activation_queue_depth,
                scale_up_window_seconds=scaling.scale_up_stabilization_seconds,
                scale_down_window_seconds=scaling.scale_down_stabilization_seconds,
            )
            stored_autoscaler = platform.typed_status.autoscaler
            state = memory.scaling or ScalingState.from_status(
                stored_autoscaler.state if stored_autoscaler is not None else None,
                default_replicas=self._worker_replicas(platform, memory, spec),
            )
            previous = memory.queue or queue_observation(platform.typed_status)
            try:
                depth = await self._read_depth(platform, spec)
            except QueueDepthUnavailable as exc:
                if previous.error is None:
                    emit("Warning", "QueueUnreachable", str(exc))
                    logger.warning(str(exc))
                memory.queue = replace(previous, depth=None, error=str(exc), fixed_replicas=False)
                await self._write_autoscale_status(platform, spec, memory)
                return None

            now = self._clock()
            decision = decide(policy, state, depth, now)
            memory.scaling = decision.state
            queue = replace(
                previous,
                depth=depth,
                desired_replicas=decision.replicas,
                error=None,
                fixed_replicas=False,
                autoscaler_state=decision.state.to_status(),
            )
            last = previous.last_decision
            if last is None or (last.reason, last.to_replicas) != (decision.reason.value, decision.replicas):
                queue = replace(queue, last_decision=_decision_record(decision, now))
            if decision.changed:
                await self._apply_worker_count(platform, spec, decision.replicas)
                emit("Normal", decision.reason.value, decision.message)
                logger.info(decision.message)
                queue = replace(queue, last_scale_time=now, last_scale_reason=decision.message)
            memory.queue = queue
            await self._write_autoscale_status(platform, spec, memory)
            return decision

    async def _read_depth(self, platform: PlatformRef, spec: PlatformSpec) -> int:
        ref = spec.redis.url_secret_ref
        try:
            url = await self.api.read_secret_value(platform.namespace, ref.name, ref.key)
        except KubeApiError as exc:
            raise QueueDepthUnavailable(
                f"cannot read the Redis URL from key {ref.key!r} of Secret {platform.namespace}/{ref.name} "
                f"({exc}); create that Secret or fix spec.redis.urlSecretRef"
            ) from None
        return await self.queue_reader.depth(url.strip(), spec.redis.queue_name)

    async def _apply_worker_count(self, platform: PlatformRef, spec: PlatformSpec, replicas: int) -> None:
        children = build_children(platform.name, platform.namespace, platform.uid, spec, replicas)
        worker = next(
            c
            for c in children
            if c["kind"] == "Deployment" and c["metadata"]["labels"].get(_COMPONENT_LABEL) == "workers"
        )
        await self.api.apply(worker)

    async def _write_autoscale_status(self, platform: PlatformRef, spec: PlatformSpec, memory: PlatformMemory) -> None:
        children = build_children(
            platform.name, platform.namespace, platform.uid, spec, self._worker_replicas(platform, memory, spec)
        )
        try:
            existing = await list_children(
                self.api, platform.namespace, platform.name, platform.uid, kinds=_WORKLOAD_KINDS
            )
        except KubeApiError:
            return  # the reconcile pass reports API trouble; the queue figures wait for it
        workloads = _observe_workloads(spec, children, ApplyResult(changes=[], live=existing))
        await self._write_status(platform, workloads, ReconcileOutcome(), memory)


def _clears_something(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when `new` sets to None (deletes) a key that `old` still has."""
    for key, value in new.items():
        if value is None and old.get(key) is not None:
            return True
        if isinstance(value, Mapping) and isinstance(old.get(key), Mapping) and _clears_something(old[key], value):
            return True
    return False


def _decision_record(decision: ScalingDecision, now: datetime) -> ScalingDecisionRecord:
    return ScalingDecisionRecord(
        time=now.replace(microsecond=0),
        reason=decision.reason.value,
        message=decision.message,
        queue_depth=decision.queue_depth,
        from_replicas=decision.previous_replicas,
        to_replicas=decision.replicas,
    )


def _observe_workloads(
    spec: PlatformSpec, children: list[dict[str, Any]], result: ApplyResult
) -> dict[str, WorkloadObservation | None]:
    """Each component's workload, observed from its live object (or as missing)."""
    workloads: dict[str, WorkloadObservation | None] = {}
    for child in children:
        if child["kind"] not in _WORKLOAD_KINDS:
            continue
        component = COMPONENT_BY_LABEL.get(child["metadata"]["labels"].get(_COMPONENT_LABEL, ""))
        if component is None:
            continue
        key: ChildKey = key_of(child)
        workloads[component] = observe_workload(child["kind"], key[1], result.live.get(key))
    if spec.vector_store.managed is None:
        workloads["vectorStore"] = None
    return {k: workloads[k] for k in COMPONENTS if k in workloads}
