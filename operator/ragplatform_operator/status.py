"""The RagPlatform's `status`, computed from its children's own status, as pure functions.

Callers observe the workloads (`observe_workload`), describe what the reconcile pass and the
autoscaler found (`ReconcileOutcome`, `QueueObservation`), and get the whole status back from
`build_status`. Nothing here reads the cluster or the clock, so it is unit-tested directly.

Conditions follow the Kubernetes convention: `type`, `status` ("True"/"False"/"Unknown"),
a CamelCase `reason`, a human `message` that says what to do when something is wrong,
`lastTransitionTime` (kept from the previous status while `status` does not change) and
`observedGeneration`. Types: `Ready`, `Progressing`, `Degraded`, one `<Component>Ready` per
component (`GatewayReady` … `WorkersReady`, `PoolerReady`, `VectorStoreReady`), and
`WorkersAutoscaling`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Condition = dict[str, Any]

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
    last_decision: Mapping[str, Any] | None = None
    autoscaler_state: Mapping[str, Any] | None = None
    fixed_replicas: bool = False


@dataclass(frozen=True)
class ReconcileOutcome:
    """How the latest reconcile pass ended: invalid spec, failed apply, or fine (both None)."""

    spec_error: str | None = None
    apply_error: str | None = None


def _condition(type_: str, ok: bool | None, reason: str, message: str) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message}


def component_condition(key: str, workload: WorkloadObservation | None) -> Condition:
    """The `<Component>Ready` condition of one component from its workload's status.

    `workload` None means the component has no workload of its own (an external vector store).
    """
    type_, what = COMPONENTS[key]
    if workload is None:
        return _condition(type_, True, "External", f"the {what} is external; the operator does not run it")
    ref = workload.reference
    if not workload.exists:
        return _condition(
            type_, False, "NotCreated", f"{ref} does not exist yet; the operator creates it on its next pass"
        )
    counts = f"{workload.ready}/{workload.desired} replicas ready"
    if workload.stuck_message:
        return _condition(
            type_,
            False,
            "RolloutStuck",
            f"{ref}: {workload.stuck_message}; {counts}. Check `kubectl describe {ref}` and its pods' "
            "events (image, resources, probes).",
        )
    if workload.desired == 0:
        return _condition(type_, True, "ScaledToZero", f"{ref} runs no replicas")
    if workload.ready < workload.desired:
        return _condition(
            type_,
            False,
            "ReplicasNotReady",
            f"{ref}: {counts}. If this lasts, check `kubectl describe {ref}` and the events of its pods.",
        )
    if not workload.up_to_date or workload.updated < workload.desired:
        return _condition(type_, False, "RollingOut", f"{ref}: rolling out a new version; {counts}")
    return _condition(type_, True, "ReplicasReady", f"{ref}: {counts}")


def tier_replicas(workload: WorkloadObservation | None) -> dict[str, Any] | None:
    """One entry of `status.tiers`: desired and ready replicas and `ready/desired` for kubectl."""
    if workload is None:
        return None
    desired = workload.desired if workload.exists else 0
    return {"desiredReplicas": desired, "readyReplicas": workload.ready, "ready": f"{workload.ready}/{desired}"}


def _autoscaling_condition(queue: QueueObservation | None) -> Condition:
    if queue is None:
        return _condition("WorkersAutoscaling", None, "NotObservedYet", "the queue depth has not been read yet")
    if queue.fixed_replicas:
        return _condition(
            "WorkersAutoscaling", True, "FixedReplicas", "spec.workers.replicas is set; queue autoscaling is off"
        )
    if queue.error:
        return _condition("WorkersAutoscaling", False, "QueueUnreachable", queue.error)
    return _condition(
        "WorkersAutoscaling",
        True,
        "QueueDepthRead",
        f"queue depth {queue.depth}; {queue.desired_replicas} workers wanted",
    )


def _summary_conditions(
    components: Sequence[Condition], outcome: ReconcileOutcome, queue: QueueObservation | None
) -> list[Condition]:
    not_ready = [c for c in components if c["status"] != "True"]
    stuck = [c for c in not_ready if c["reason"] == "RolloutStuck"]
    if outcome.spec_error:
        degraded = _condition("Degraded", True, "InvalidSpec", outcome.spec_error)
    elif outcome.apply_error:
        degraded = _condition("Degraded", True, "ApplyFailed", outcome.apply_error)
    elif stuck:
        degraded = _condition("Degraded", True, "RolloutStuck", "; ".join(c["message"] for c in stuck))
    elif queue is not None and queue.error:
        degraded = _condition("Degraded", True, "QueueUnreachable", queue.error)
    else:
        degraded = _condition("Degraded", False, "AsExpected", "nothing is degraded")

    waiting = [c for c in not_ready if c["reason"] in ("NotCreated", "ReplicasNotReady", "RollingOut")]
    if outcome.spec_error:
        progressing = _condition(
            "Progressing", False, "InvalidSpec", "nothing changes until the spec is fixed (see Degraded)"
        )
    elif waiting:
        progressing = _condition("Progressing", True, "ComponentsStarting", "; ".join(c["message"] for c in waiting))
    else:
        progressing = _condition("Progressing", False, "Settled", "every component matches the spec")

    if degraded["status"] == "True":
        ready = _condition("Ready", False, degraded["reason"], degraded["message"])
    elif not_ready:
        names = ", ".join(c["type"].removesuffix("Ready") for c in not_ready)
        ready = _condition("Ready", False, "ComponentsNotReady", f"waiting for: {names} (see their conditions)")
    else:
        ready = _condition("Ready", True, "AllComponentsReady", "every component is ready")
    return [ready, progressing, degraded]


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Condition], now: datetime, generation: int
) -> list[Condition]:
    """`current` with `lastTransitionTime` kept from `previous` where the status did not change."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for condition in current:
        old = before.get(condition["type"])
        changed = old is None or old.get("status") != condition["status"] or "lastTransitionTime" not in old
        since = now.replace(microsecond=0).isoformat() if changed or old is None else old["lastTransitionTime"]
        merged.append({**condition, "lastTransitionTime": since, "observedGeneration": generation})
    return merged


def build_status(
    *,
    generation: int,
    workloads: Mapping[str, WorkloadObservation | None],
    outcome: ReconcileOutcome,
    queue: QueueObservation | None,
    previous_conditions: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The whole `status` of a RagPlatform.

    `workloads` maps a component key (see `COMPONENTS`) to its observation, None for an
    external component; components missing from the map (e.g. with an invalid spec, when
    nothing was built) get no condition. `queue` None: not read yet.
    """
    component_conditions = [component_condition(key, workloads[key]) for key in COMPONENTS if key in workloads]
    conditions = _summary_conditions(component_conditions, outcome, queue)
    conditions += component_conditions
    if not outcome.spec_error:
        conditions.append(_autoscaling_condition(queue))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous_conditions, conditions, now, generation),
    }
    tiers = {key: tier_replicas(workloads[key]) for key in COMPONENTS if key in workloads}
    if any(v is not None for v in tiers.values()):
        status["tiers"] = {k: v for k, v in tiers.items() if v is not None}
    if queue is not None:
        status["queue"] = queue_status(queue)
        autoscaler: dict[str, Any] = {}
        if queue.last_decision is not None:
            autoscaler["lastDecision"] = dict(queue.last_decision)
        if queue.autoscaler_state is not None:
            autoscaler["state"] = dict(queue.autoscaler_state)
        if autoscaler:
            # Top level of status, which preserves unknown fields (status.queue does not).
            status["autoscaler"] = autoscaler
    return status


def queue_status(queue: QueueObservation) -> dict[str, Any]:
    """`status.queue`: depth, desired workers, the last scale and the last read error."""
    out: dict[str, Any] = {}
    if queue.depth is not None:
        out["depth"] = queue.depth
    if queue.desired_replicas is not None:
        out["desiredReplicas"] = queue.desired_replicas
    if queue.last_scale_time is not None:
        out["lastScaleTime"] = queue.last_scale_time.isoformat()
    if queue.last_scale_reason is not None:
        out["lastScaleReason"] = queue.last_scale_reason
    # Always written (None clears it in a merge patch) so a recovered Redis clears the old error.
    out["lastError"] = queue.error
    return out
