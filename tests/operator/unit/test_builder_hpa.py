"""HPAs: autoscaling/v2 on CPU for autoscaled tiers, never for fixed tiers or the workers."""

from __future__ import annotations

from typing import Any

from tests.operator.unit.conftest import find, names_of, render


def test_autoscaled_tiers_get_a_cpu_hpa_on_their_deployment(production: dict[str, Any]) -> None:
    hpa = find(render(production, name="rag-prod"), "HorizontalPodAutoscaler", "rag-prod-gateway")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rag-prod-gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    assert hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 65},
    }


def test_default_cpu_target_is_seventy_percent(production: dict[str, Any]) -> None:
    hpa = find(render(production, name="rag-prod"), "HorizontalPodAutoscaler", "rag-prod-generation")

    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_fixed_tiers_and_workers_get_no_hpa(production: dict[str, Any]) -> None:
    hpas = names_of(render(production, name="rag-prod"), "HorizontalPodAutoscaler")

    assert hpas == {"rag-prod-gateway", "rag-prod-ingestion", "rag-prod-retrieval", "rag-prod-generation"}


def test_switching_a_tier_to_fixed_replicas_drops_its_hpa(production: dict[str, Any]) -> None:
    production["gateway"].pop("autoscaling")
    production["gateway"]["replicas"] = 5

    children = render(production, name="rag-prod")

    assert "rag-prod-gateway" not in names_of(children, "HorizontalPodAutoscaler")
    assert find(children, "Deployment", "rag-prod-gateway")["spec"]["replicas"] == 5
