"""Tier Deployments: the command, ports, native gRPC probes, restricted security, /tmp, replicas."""

from __future__ import annotations

from typing import Any

import pytest

from ragplatform_operator.spec import SERVICE_BY_TIER, TIER_NAMES
from tests.operator.unit.conftest import find, render

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_each_tier_serves_its_service_on_the_grpc_port(minimal: dict[str, Any], tier: str) -> None:
    container = _container(find(render(minimal), "Deployment", f"demo-{tier}"))

    assert container["command"] == ["ragplatform"]
    assert container["args"] == ["serve", SERVICE_BY_TIER[tier]]  # type: ignore[index]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 50051, "metrics": 9090}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50051}, probe


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_each_tier_follows_the_restricted_pod_security_profile(minimal: dict[str, Any], tier: str) -> None:
    deployment = find(render(minimal), "Deployment", f"demo-{tier}")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == RESTRICTED_CONTAINER
    # The root filesystem is read-only: /tmp (and RAG_DATA_DIR under it) is an emptyDir.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RAG_DATA_DIR"].startswith("/tmp/")


def test_fixed_replicas_are_rendered_and_autoscaled_tiers_leave_replicas_to_the_hpa(
    production: dict[str, Any],
) -> None:
    children = render(production, name="rag-prod")

    assert find(children, "Deployment", "rag-prod-conversation")["spec"]["replicas"] == 3
    # With server-side apply, a replicas field here would fight the HPA's own changes.
    assert "replicas" not in find(children, "Deployment", "rag-prod-gateway")["spec"]


def test_default_tier_replicas_is_one(minimal: dict[str, Any]) -> None:
    assert find(render(minimal), "Deployment", "demo-retrieval")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("worker_replicas", "expected"),
    [(None, 0), (0, 0), (7, 7), (30, 30), (99, 30)],
)
def test_worker_replicas_come_from_the_autoscaler_clamped_to_bounds(
    production: dict[str, Any], worker_replicas: int | None, expected: int
) -> None:
    deployment = find(render(production, "rag-prod", worker_replicas), "Deployment", "rag-prod-workers")

    assert deployment["spec"]["replicas"] == expected


def test_fixed_worker_replicas_ignore_the_autoscaler(minimal: dict[str, Any]) -> None:
    minimal["workers"] = {"replicas": 4}

    deployment = find(render(minimal, worker_replicas=9), "Deployment", "demo-workers")

    assert deployment["spec"]["replicas"] == 4


def test_drain_period_is_shorter_than_the_kill_grace_period(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    for tier in TIER_NAMES:
        deployment = find(children, "Deployment", f"rag-prod-{tier}")
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in _container(deployment)["env"]}
        assert 0 < float(env["RAG_GRACE_PERIOD_SECONDS"]) < pod["terminationGracePeriodSeconds"], tier
    workers = find(children, "Deployment", "rag-prod-workers")["spec"]["template"]["spec"]
    assert workers["terminationGracePeriodSeconds"] == 600


def test_resources_merge_over_tier_defaults(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    ingestion = _container(find(children, "Deployment", "rag-prod-ingestion"))["resources"]
    # Only limits.memory was given: the default CPU request stays, so the HPA can work.
    assert ingestion["limits"]["memory"] == "2Gi"
    assert ingestion["requests"]["cpu"]
    workers = _container(find(children, "Deployment", "rag-prod-workers"))["resources"]
    assert workers["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_tier_image_overrides_the_platform_image(minimal: dict[str, Any]) -> None:
    minimal["image"] = "registry.example/rag:1.2.3"
    minimal["generation"] = {"image": "registry.example/rag-gen:9"}
    children = render(minimal)

    assert _container(find(children, "Deployment", "demo-generation"))["image"] == "registry.example/rag-gen:9"
    assert _container(find(children, "Deployment", "demo-gateway"))["image"] == "registry.example/rag:1.2.3"


def test_extra_env_replaces_a_rendered_variable_and_appends_new_ones(minimal: dict[str, Any]) -> None:
    minimal["generation"] = {
        "env": [
            {"name": "RAG_LOG_LEVEL", "value": "debug"},
            {"name": "RAG_LLM_MAX_TOKENS", "valueFrom": {"secretKeyRef": {"name": "tuning", "key": "tokens"}}},
        ]
    }
    env = _container(find(render(minimal), "Deployment", "demo-generation"))["env"]
    names = [e["name"] for e in env]

    assert names.count("RAG_LOG_LEVEL") == 1
    assert {"name": "RAG_LOG_LEVEL", "value": "debug"} in env
    assert env[-1] == {
        "name": "RAG_LLM_MAX_TOKENS",
        "valueFrom": {"secretKeyRef": {"name": "tuning", "key": "tokens"}},
    }


def test_admission_settings_are_rendered_only_for_the_tier_that_sets_them(minimal: dict[str, Any]) -> None:
    minimal["gateway"] = {
        "maxInFlight": 300,
        "admissionPaceSeconds": 10.25,
        "admissionLagTargetSeconds": 0.02,
        "admissionLatencyTargetSeconds": 0.4,
    }
    minimal["retrieval"] = {"admissionMarkLagSeconds": 0.005}
    rendered = render(minimal)
    gateway_env = _container(find(rendered, "Deployment", "demo-gateway"))["env"]
    generation_env = _container(find(rendered, "Deployment", "demo-generation"))["env"]
    retrieval_env = _container(find(rendered, "Deployment", "demo-retrieval"))["env"]

    assert {"name": "RAG_MAX_IN_FLIGHT", "value": "300"} in gateway_env
    assert {"name": "RAG_ADMISSION_PACE_SECONDS", "value": "10.25"} in gateway_env
    assert {"name": "RAG_ADMISSION_LAG_TARGET_SECONDS", "value": "0.02"} in gateway_env
    assert {"name": "RAG_ADMISSION_LATENCY_TARGET_SECONDS", "value": "0.4"} in gateway_env
    assert {"name": "RAG_ADMISSION_MARK_LAG_SECONDS", "value": "0.005"} in retrieval_env
    # unset: the service's own default applies (one source of truth)
    names = [e["name"] for e in generation_env]
    assert "RAG_MAX_IN_FLIGHT" not in names
    assert "RAG_ADMISSION_PACE_SECONDS" not in names
    assert "RAG_ADMISSION_LAG_TARGET_SECONDS" not in names
    assert "RAG_ADMISSION_MARK_LAG_SECONDS" not in names
    assert "RAG_ADMISSION_LATENCY_TARGET_SECONDS" not in names


def test_image_pull_secrets_and_node_selector_reach_the_pod(minimal: dict[str, Any]) -> None:
    minimal["imagePullSecrets"] = ["regcred"]
    minimal["workers"] = {"nodeSelector": {"pool": "cpu-heavy"}}
    pod = find(render(minimal), "Deployment", "demo-workers")["spec"]["template"]["spec"]

    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "cpu-heavy"}


def test_tolerations_and_priority_class_reach_only_their_tier(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")
    workers = find(children, "Deployment", "rag-prod-workers")["spec"]["template"]["spec"]
    gateway = find(children, "Deployment", "rag-prod-gateway")["spec"]["template"]["spec"]

    assert workers["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ingestion", "effect": "NoSchedule"}
    ]
    assert workers["priorityClassName"] == "batch-low"
    assert workers["nodeSelector"] == {"pool": "ingestion"}
    assert "tolerations" not in gateway
    assert "priorityClassName" not in gateway
