"""The RagPlatform's `status`, computed from its children's own status, as pure functions.

Callers observe the workloads (`observe_workload`), describe what the reconcile pass and the
autoscaler found (`ReconcileOutcome`, `QueueObservation`), and get the whole status back from
`build_status`, built as the typed `PlatformStatus` (status_model.py) and returned as the merge
patch to write. Nothing here reads the cluster or the clock, so it is unit-tested directly.

Condition types: `Ready`, `Progressing`, `Degraded`, one `<Component>Ready` per component
(`GatewayReady` … `WorkersReady`, `PoolerReady`, `VectorStoreReady`), and `WorkersAutoscaling`;
`lastTransitionTime` is kept from the previous status while `status` does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ragplatform_operator.status_model import (
    AutoscalerStatus,
    Condition,
    PlatformStatus,
    QueueStatus,
    ScalingDecisionRecord,
    StoredVectors,
    TierReplicas,
    TiersStatus,
)

# Status key (as in the CRD's status.tiers) -> (condition type, what a human calls it).
COMPONENTS: dict[str, tuple[str, str]] = {
    "gateway": ("GatewayReady", "gateway"),
    "ingestion": ("IngestionReady", "ingestion service"),
    "retrieval": ("RetrievalReady", "retrieval service"),
    "generation": ("GenerationReady", "generation service"),
    "conversation": ("ConversationReady", "conversation service"),
    "workers": ("WorkersReady", "ingestion workers"),
    "pgbouncer": ("PoolerReady", "PgBouncer pool"),
    "vectorStore": ("VectorStoreReady", "Qdrant vector store"),
}
# The value of a workload's app.kubernetes.io/component label -> its key in COMPONENTS.
COMPONENT_BY_LABEL: dict[str, str] = {
    "gateway": "gateway",
    "ingestion": "ingestion",
    "retrieval": "retrieval",
    "generation": "generation",
    "conversation": "conversation",
    "workers": "workers",
    "pgbouncer": "pgbouncer",
    "qdrant": "vectorStore",
}


@dataclass(frozen=True)
class WorkloadObservation:
    """What a Deployment's or StatefulSet's own status says (None when the object is missing)."""

    kind: str
    name: str
    exists: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    up_to_date: bool = True
    stuck_message: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def observe_workload(kind: str, name: str, obj: Mapping[str, Any] | None) -> WorkloadObservation:
    """Read a Deployment or StatefulSet (as returned by the API) into a `WorkloadObservation`."""
    if obj is None:
        return WorkloadObservation(kind=kind, name=name, exists=False)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    desired = spec.get("replicas", 1)
    stuck = None
    for condition in status.get("conditions") or []:
        # A Deployment past its progressDeadlineSeconds reports this and stops retrying by itself.
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            stuck = str(condition.get("message") or "progress deadline exceeded")
    return WorkloadObservation(
        kind=kind,
        name=name,
        exists=True,
        desired=int(desired if desired is not None else 1),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        up_to_date=generation is None or observed is None or observed >= generation,
        stuck_message=stuck,
    )


@dataclass(frozen=True)
class QueueObservation:
    """What the autoscaler saw and did in its latest pass (None fields: not known)."""

    depth: int | None = None
    desired_replicas: int | None = None
    error: str | None = None
    last_scale_time: datetime | None = None
    last_scale_reason: str | None = None
    last_decision: ScalingDecisionRecord | None = None
    autoscaler_state: Mapping[str, Any] | None = None
    fixed_replicas: bool = False


@dataclass(frozen=True)
class ReconcileOutcome:
    """How the latest reconcile pass ended: invalid spec, failed apply, or fine (both None)."""

    spec_error: str | None = None
    apply_error: str | None = None


def component_condition(key: str, workload: WorkloadObservation | None) -> Condition:
    """The `<Component>Ready` condition of one component from its workload's status.

    `workload` None means the component has no workload of its own (an external vector store).
    """
    type_, what = COMPONENTS[key]
    if workload is None:
        return Condition.of(type_, True, "External", f"the {what} is external; the operator does not run it")
    ref = workload.reference
    if not workload.exists:
        return Condition.of(
            type_, False, "NotCreated", f"{ref} does not exist yet; the operator creates it on its next pass"
        )
    counts = f"{workload.ready}/{workload.desired} replicas ready"
    if workload.stuck_message:
        return Condition.of(
            type_,
            False,
            "RolloutStuck",
            f"{ref}: {workload.stuck_message}; {counts}. Check `kubectl describe {ref}` and its pods' "
            "events (image, resources, probes).",
        )
    if workload.desired == 0:
        return Condition.of(type_, True, "ScaledToZero", f"{ref} runs no replicas")
    if workload.ready < workload.desired:
        return Condition.of(
            type_,
            False,
            "ReplicasNotReady",
            f"{ref}: {counts}. If this lasts, check `kubectl describe {ref}` and the events of its pods.",
        )
    if not workload.up_to_date or workload.updated < workload.desired:
        return Condition.of(type_, False, "RollingOut", f"{ref}: rolling out a new version; {counts}")
    return Condition.of(type_, True, "ReplicasReady", f"{ref}: {counts}")


def tier_replicas(workload: WorkloadObservation | None) -> TierReplicas | None:
    """One entry of `status.tiers`: desired and ready replicas and `ready/desired` for kubectl."""
    if workload is None:
        return None
    desired = workload.desired if workload.exists else 0
    return TierReplicas(desired_replicas=desired, ready_replicas=workload.ready, ready=f"{workload.ready}/{desired}")


def _autoscaling_condition(queue: QueueObservation | None) -> Condition:
    if queue is None:
        return Condition.of("WorkersAutoscaling", None, "NotObservedYet", "the queue depth has not been read yet")
    if queue.fixed_replicas:
        return Condition.of(
            "WorkersAutoscaling", True, "FixedReplicas", "spec.workers.replicas is set; queue autoscaling is off"
        )
    if queue.error:
        return Condition.of("WorkersAutoscaling", False, "QueueUnreachable", queue.error)
    return Condition.of(
        "WorkersAutoscaling",
        True,
        "QueueDepthRead",
        f"queue depth {queue.depth}; {queue.desired_replicas} workers wanted",
    )


def _summary_conditions(
    components: Sequence[Condition], outcome: ReconcileOutcome, queue: QueueObservation | None
) -> list[Condition]:
    not_ready = [c for c in components if c.status != "True"]
    stuck = [c for c in not_ready if c.reason == "RolloutStuck"]
    if outcome.spec_error:
        degraded = Condition.of("Degraded", True, "InvalidSpec", outcome.spec_error)
    elif outcome.apply_error:
        degraded = Condition.of("Degraded", True, "ApplyFailed", outcome.apply_error)
    elif stuck:
        degraded = Condition.of("Degraded", True, "RolloutStuck", "; ".join(c.message for c in stuck))
    elif queue is not None and queue.error:
        degraded = Condition.of("Degraded", True, "QueueUnreachable", queue.error)
    else:
        degraded = Condition.of("Degraded", False, "AsExpected", "nothing is degraded")

    waiting = [c for c in not_ready if c.reason in ("NotCreated", "ReplicasNotReady", "RollingOut")]
    if outcome.spec_error:
        progressing = Condition.of(
            "Progressing", False, "InvalidSpec", "nothing changes until the spec is fixed (see Degraded)"
        )
    elif waiting:
        progressing = Condition.of("Progressing", True, "ComponentsStarting", "; ".join(c.message for c in waiting))
    else:
        progressing = Condition.of("Progressing", False, "Settled", "every component matches the spec")

    if degraded.status == "True":
        ready = Condition.of("Ready", False, degraded.reason, degraded.message)
    elif not_ready:
        names = ", ".join(c.type.removesuffix("Ready") for c in not_ready)
        ready = Condition.of("Ready", False, "ComponentsNotReady", f"waiting for: {names} (see their conditions)")
    else:
        ready = Condition.of("Ready", True, "AllComponentsReady", "every component is ready")
    return [ready, progressing, degraded]


def merge_conditions(
    previous: Sequence[Condition], current: Sequence[Condition], now: datetime, generation: int
) -> list[Condition]:
    """`current` with `lastTransitionTime` kept from `previous` where the status did not change."""
    before = {c.type: c for c in previous}
    merged = []
    for condition in current:
        old = before.get(condition.type)
        kept = old is not None and old.status == condition.status and old.last_transition_time is not None
        since = old.last_transition_time if kept and old is not None else now.replace(microsecond=0)
        merged.append(condition.model_copy(update={"last_transition_time": since, "observed_generation": generation}))
    return merged


def build_status(
    *,
    generation: int,
    workloads: Mapping[str, WorkloadObservation | None],
    outcome: ReconcileOutcome,
    queue: QueueObservation | None,
    previous: PlatformStatus,
    now: datetime,
    stored_vectors: StoredVectors | None = None,
) -> PlatformStatus:
    """The whole `status` of a RagPlatform.

    `workloads` maps a component key (see `COMPONENTS`) to its observation, None for an
    external component; components missing from the map (e.g. with an invalid spec, when
    nothing was built) get no condition. `queue` None: not read yet. `previous` is the status
    as stored (transition times are kept from it). `stored_vectors`: what the vectors are made
    with, once a pass has applied the spec (kept from `previous` when None).
    """
    component_conditions = [component_condition(key, workloads[key]) for key in COMPONENTS if key in workloads]
    conditions = _summary_conditions(component_conditions, outcome, queue)
    conditions += component_conditions
    if not outcome.spec_error:
        conditions.append(_autoscaling_condition(queue))
    tiers = {key: tier_replicas(workloads[key]) for key in COMPONENTS if key in workloads}
    status = PlatformStatus(
        observed_generation=generation,
        conditions=merge_conditions(previous.conditions, conditions, now, generation),
        tiers=TiersStatus.model_validate(tiers) if any(v is not None for v in tiers.values()) else None,
        stored_vectors=previous.stored_vectors or stored_vectors,
    )
    if queue is not None:
        status.queue = queue_status(queue)
        if queue.last_decision is not None or queue.autoscaler_state is not None:
            status.autoscaler = AutoscalerStatus(
                last_decision=queue.last_decision,
                state=dict(queue.autoscaler_state) if queue.autoscaler_state is not None else None,
            )
    return status


def queue_status(queue: QueueObservation) -> QueueStatus:
    """`status.queue`: depth, desired workers, the last scale and the last read error."""
    return QueueStatus(
        depth=queue.depth,
        desired_replicas=queue.desired_replicas,
        last_scale_time=queue.last_scale_time,
        last_scale_reason=queue.last_scale_reason,
        last_error=queue.error,
    )


def queue_observation(status: PlatformStatus) -> QueueObservation:
    """What a previous operator process recorded about the queue (read after a restart)."""
    queue = status.queue or QueueStatus()
    return QueueObservation(
        depth=queue.depth,
        desired_replicas=queue.desired_replicas,
        error=queue.last_error,
        last_scale_time=queue.last_scale_time,
        last_scale_reason=queue.last_scale_reason,
        last_decision=status.autoscaler.last_decision if status.autoscaler else None,
    )
