"""NetworkPolicies, checked by what they allow: only the gateway reaches the backends, only the
platform reaches its stores.

`_allowed` evaluates ingress policies the way a NetworkPolicy implementation does for pods of one
namespace (a pod selected by any policy accepts only what some rule of those policies allows).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.conftest import names_of, render


def _pod_labels(children: list[dict[str, Any]], component: str) -> dict[str, str]:
    for child in children:
        if child["kind"] in ("Deployment", "StatefulSet") and (
            child["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ):
            labels: dict[str, str] = child["spec"]["template"]["metadata"]["labels"]
            return labels
    if component == "qdrant-snapshot":
        cron = next(c for c in children if c["kind"] == "CronJob")
        labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        return labels
    raise AssertionError(f"no workload for {component}")


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def _allowed(children: list[dict[str, Any]], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    policies = [c for c in children if c["kind"] == "NetworkPolicy" and _matches(c["spec"]["podSelector"], target)]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            port_ok = "ports" not in rule or any(p["port"] == port for p in rule["ports"])
            from_ok = "from" not in rule or any(_matches(peer["podSelector"], source) for peer in rule["from"])
            if port_ok and from_ok:
                return True
    return False


OUTSIDER = {"app": "someone-else"}
GRPC, METRICS = 50051, 9090


@pytest.fixture
def children(production: dict[str, Any]) -> list[dict[str, Any]]:
    return render(production, name="rag-prod")


def test_anyone_reaches_the_gateway(children: list[dict[str, Any]]) -> None:
    assert _allowed(children, OUTSIDER, _pod_labels(children, "gateway"), GRPC)


@pytest.mark.parametrize("backend", ["ingestion", "retrieval", "generation", "conversation"])
def test_only_the_gateway_reaches_a_backend(children: list[dict[str, Any]], backend: str) -> None:
    target = _pod_labels(children, backend)

    assert _allowed(children, _pod_labels(children, "gateway"), target, GRPC)
    assert not _allowed(children, OUTSIDER, target, GRPC)
    assert not _allowed(
        children, _pod_labels(children, "generation" if backend != "generation" else "conversation"), target, GRPC
    )


def test_ingestion_and_workers_reach_retrieval_which_they_call(children: list[dict[str, Any]]) -> None:
    target = _pod_labels(children, "retrieval")

    assert _allowed(children, _pod_labels(children, "ingestion"), target, GRPC)
    assert _allowed(children, _pod_labels(children, "workers"), target, GRPC)


def test_nobody_calls_the_workers(children: list[dict[str, Any]]) -> None:
    assert not _allowed(children, _pod_labels(children, "gateway"), _pod_labels(children, "workers"), GRPC)


@pytest.mark.parametrize("component", ["gateway", "retrieval", "workers"])
def test_metrics_stay_scrapeable_from_anywhere(children: list[dict[str, Any]], component: str) -> None:
    assert _allowed(children, OUTSIDER, _pod_labels(children, component), METRICS)


def test_only_the_platform_reaches_pgbouncer(children: list[dict[str, Any]], production: dict[str, Any]) -> None:
    target = _pod_labels(children, "pgbouncer")

    for component in ("gateway", "ingestion", "workers", "conversation"):
        assert _allowed(children, _pod_labels(children, component), target, 5432), component
    assert not _allowed(children, OUTSIDER, target, 5432)
    # Another RagPlatform in the same namespace is not "the platform".
    other = render(production, name="other")
    assert not _allowed(children, _pod_labels(other, "gateway"), target, 5432)


def test_only_the_platform_reaches_qdrant_and_only_qdrant_its_peer_port(children: list[dict[str, Any]]) -> None:
    target = _pod_labels(children, "qdrant")

    assert _allowed(children, _pod_labels(children, "retrieval"), target, 6333)
    assert _allowed(children, _pod_labels(children, "qdrant-snapshot"), target, 6333)
    assert not _allowed(children, OUTSIDER, target, 6333)
    assert _allowed(children, target, target, 6335)
    assert not _allowed(children, _pod_labels(children, "retrieval"), target, 6335)


def test_policies_can_be_turned_off(minimal: dict[str, Any]) -> None:
    minimal["networkPolicy"] = {"enabled": False}

    assert names_of(render(minimal), "NetworkPolicy") == set()
