"""Status builders: conditions and replica counts computed from the children's own status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ragplatform_operator.status import (
    COMPONENTS,
    QueueObservation,
    ReconcileOutcome,
    WorkloadObservation,
    build_status,
    component_condition,
    observe_workload,
    queue_observation,
)
from ragplatform_operator.status_model import Condition, PlatformStatus, ScalingDecisionRecord

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def k8s_time(moment: datetime) -> str:
    """How the API server (and the operator) write a time: RFC 3339, UTC, whole seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(*, previous_conditions: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """`build_status` as the merge patch the operator writes, after a status with these conditions."""
    previous = PlatformStatus.from_raw({"conditions": previous_conditions})
    return build_status(previous=previous, **kwargs).to_patch()


def deployment(
    desired: int,
    ready: int,
    *,
    updated: int | None = None,
    generation: int = 1,
    observed: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-gateway", "generation": generation},
        "spec": {"replicas": desired},
        "status": {
            "readyReplicas": ready,
            "updatedReplicas": desired if updated is None else updated,
            "observedGeneration": observed,
            "conditions": conditions or [],
        },
    }


def ready_workloads() -> dict[str, WorkloadObservation | None]:
    out: dict[str, WorkloadObservation | None] = {
        key: observe_workload("Deployment", f"demo-{key}", deployment(2, 2)) for key in COMPONENTS
    }
    out["vectorStore"] = observe_workload("StatefulSet", "demo-qdrant", deployment(1, 1))
    return out


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_ready_gives_ready_true_and_replica_counts() -> None:
    status = status_of(
        generation=3,
        workloads=ready_workloads(),
        outcome=ReconcileOutcome(),
        queue=QueueObservation(depth=0, desired_replicas=2),
        previous_conditions=[],
        now=NOW,
    )
    conditions = by_type(status)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Degraded"]["status"] == "False"
    for type_, _ in COMPONENTS.values():
        assert conditions[type_]["status"] == "True", type_
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["tiers"]["gateway"] == {"desiredReplicas": 2, "readyReplicas": 2, "ready": "2/2"}
    assert status["tiers"]["vectorStore"]["ready"] == "1/1"
    assert status["queue"] == {"depth": 0, "desiredReplicas": 2, "lastError": None}


def test_replicas_not_ready_names_the_component_and_counts() -> None:
    workloads = ready_workloads()
    workloads["retrieval"] = observe_workload("Deployment", "demo-retrieval", deployment(3, 1))
    conditions = by_type(
        status_of(
            generation=1, workloads=workloads, outcome=ReconcileOutcome(), queue=None, previous_conditions=[], now=NOW
        )
    )
    assert conditions["RetrievalReady"]["status"] == "False"
    assert conditions["RetrievalReady"]["reason"] == "ReplicasNotReady"
    assert "1/3 replicas ready" in conditions["RetrievalReady"]["message"]
    assert "deployment/demo-retrieval" in conditions["RetrievalReady"]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert "Retrieval" in conditions["Ready"]["message"]
    assert conditions["Progressing"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    assert conditions["WorkersAutoscaling"]["status"] == "Unknown"


def test_missing_child_is_not_created_and_progressing() -> None:
    workloads = ready_workloads()
    workloads["workers"] = observe_workload("Deployment", "demo-workers", None)
    status = status_of(
        generation=1, workloads=workloads, outcome=ReconcileOutcome(), queue=None, previous_conditions=[], now=NOW
    )
    condition = by_type(status)["WorkersReady"]
    assert (condition["status"], condition["reason"]) == ("False", "NotCreated")
    assert status["tiers"]["workers"]["ready"] == "0/0"


def test_stuck_rollout_is_degraded_with_the_deployments_own_message() -> None:
    stuck = deployment(
        2,
        0,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "demo-gateway-5c" has timed out progressing.',
            }
        ],
    )
    workloads = ready_workloads()
    workloads["gateway"] = observe_workload("Deployment", "demo-gateway", stuck)
    conditions = by_type(
        status_of(
            generation=1, workloads=workloads, outcome=ReconcileOutcome(), queue=None, previous_conditions=[], now=NOW
        )
    )
    assert conditions["GatewayReady"]["reason"] == "RolloutStuck"
    assert conditions["Degraded"]["status"] == "True"
    assert "timed out progressing" in conditions["Degraded"]["message"]
    assert conditions["Ready"]["reason"] == "RolloutStuck"


def test_rolling_out_when_the_controller_has_not_caught_up() -> None:
    rolling = observe_workload("Deployment", "demo-gateway", deployment(2, 2, updated=1, generation=4, observed=3))
    assert component_condition("gateway", rolling).reason == "RollingOut"


def test_external_vector_store_and_scaled_to_zero_count_as_ready() -> None:
    assert component_condition("vectorStore", None).reason == "External"
    zero = component_condition("workers", observe_workload("Deployment", "demo-workers", deployment(0, 0)))
    assert (zero.status, zero.reason) == ("True", "ScaledToZero")


def test_invalid_spec_is_degraded_with_what_to_fix_and_not_progressing() -> None:
    message = "invalid RagPlatform spec:\n  spec.workers.autoscaling: minReplicas (5) must be <= maxReplicas (2)"
    status = status_of(
        generation=2,
        workloads={},
        outcome=ReconcileOutcome(spec_error=message),
        queue=None,
        previous_conditions=[],
        now=NOW,
    )
    conditions = by_type(status)
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("True", "InvalidSpec")
    assert "minReplicas (5)" in conditions["Degraded"]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Progressing"]["status"] == "False"
    assert set(conditions) == {"Ready", "Progressing", "Degraded"}
    assert status["observedGeneration"] == 2


def test_unreachable_queue_is_degraded_and_reported() -> None:
    queue = QueueObservation(error="cannot reach Redis at redis://r:6379/0: connection refused; check the Redis")
    status = status_of(
        generation=1,
        workloads=ready_workloads(),
        outcome=ReconcileOutcome(),
        queue=queue,
        previous_conditions=[],
        now=NOW,
    )
    conditions = by_type(status)
    assert conditions["WorkersAutoscaling"]["reason"] == "QueueUnreachable"
    assert conditions["Degraded"]["reason"] == "QueueUnreachable"
    assert status["queue"]["lastError"].startswith("cannot reach Redis")


def test_last_scaling_decision_is_recorded() -> None:
    queue = QueueObservation(
        depth=40,
        desired_replicas=4,
        last_scale_time=NOW,
        last_scale_reason="ScaledUp",
        last_decision=ScalingDecisionRecord(
            time=NOW, reason="ScaledUp", message="scaled 1 -> 4", queue_depth=40, from_replicas=1, to_replicas=4
        ),
        autoscaler_state={"replicas": 4},
    )
    status = status_of(
        generation=1,
        workloads=ready_workloads(),
        outcome=ReconcileOutcome(),
        queue=queue,
        previous_conditions=[],
        now=NOW,
    )
    assert status["queue"]["lastScaleReason"] == "ScaledUp"
    assert status["queue"]["lastScaleTime"] == k8s_time(NOW)
    assert status["autoscaler"]["lastDecision"]["toReplicas"] == 4
    assert status["autoscaler"]["state"] == {"replicas": 4}


def test_transition_time_kept_while_status_unchanged() -> None:
    first = status_of(
        generation=1,
        workloads=ready_workloads(),
        outcome=ReconcileOutcome(),
        queue=None,
        previous_conditions=[],
        now=NOW,
    )
    later = NOW + timedelta(minutes=5)
    workloads = ready_workloads()
    workloads["gateway"] = observe_workload("Deployment", "demo-gateway", deployment(2, 1))
    second = status_of(
        generation=1,
        workloads=workloads,
        outcome=ReconcileOutcome(),
        queue=None,
        previous_conditions=first["conditions"],
        now=later,
    )
    before, after = by_type(first), by_type(second)
    assert after["RetrievalReady"]["lastTransitionTime"] == before["RetrievalReady"]["lastTransitionTime"]
    assert after["GatewayReady"]["lastTransitionTime"] == k8s_time(later)
    assert after["Ready"]["lastTransitionTime"] == k8s_time(later)


def test_a_status_written_by_a_previous_operator_reads_back_into_the_same_observation() -> None:
    queue = QueueObservation(
        depth=7,
        desired_replicas=1,
        error="cannot read queue",
        last_scale_time=NOW,
        last_scale_reason="scaled 2 -> 1",
        last_decision=ScalingDecisionRecord(
            time=NOW, reason="ScaledDown", message="scaled 2 -> 1", queue_depth=7, from_replicas=2, to_replicas=1
        ),
    )
    written = status_of(
        generation=2, workloads={}, outcome=ReconcileOutcome(), queue=queue, previous_conditions=[], now=NOW
    )

    assert queue_observation(PlatformStatus.from_raw(written)) == queue


def test_an_unreadable_stored_status_is_rebuilt_not_a_crash() -> None:
    broken = PlatformStatus.from_raw({"conditions": [{"type": "Ready", "status": "Maybe"}], "queue": "full"})
    assert broken == PlatformStatus()
    assert PlatformStatus.from_raw(None) == PlatformStatus()


def test_conditions_are_made_in_one_place_with_the_kubernetes_statuses() -> None:
    assert Condition.of("Ready", True, "AllComponentsReady", "ok").status == "True"
    assert Condition.of("Ready", False, "ComponentsNotReady", "waiting").status == "False"
    assert Condition.of("WorkersAutoscaling", None, "NotObservedYet", "not read").status == "Unknown"
