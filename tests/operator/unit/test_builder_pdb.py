"""PodDisruptionBudgets: every multi-replica component, none for a single replica."""

from __future__ import annotations

from typing import Any

from tests.operator.unit.conftest import find, names_of, render


def test_multi_replica_components_get_a_budget_of_one(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    expected = {
        f"rag-prod-{c}"
        for c in ("gateway", "ingestion", "retrieval", "generation", "conversation", "workers", "pgbouncer", "qdrant")
    }
    assert names_of(children, "PodDisruptionBudget") == expected
    pdb = find(children, "PodDisruptionBudget", "rag-prod-qdrant")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "qdrant"


def test_single_replica_components_get_none(minimal: dict[str, Any]) -> None:
    # Minimal: one replica everywhere except the workers (queue autoscaling up to 10).
    assert names_of(render(minimal), "PodDisruptionBudget") == {"demo-workers"}


def test_budget_selects_exactly_its_components_pods(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    for pdb in (c for c in children if c["kind"] == "PodDisruptionBudget"):
        component = pdb["metadata"]["labels"]["app.kubernetes.io/component"]
        workloads = [
            c
            for c in children
            if c["kind"] in ("Deployment", "StatefulSet")
            and pdb["spec"]["selector"]["matchLabels"].items() <= c["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [w["metadata"]["name"] for w in workloads] == [f"rag-prod-{component}"]
