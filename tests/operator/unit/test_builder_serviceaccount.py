"""ServiceAccounts: one per component, no API token mounted."""

from __future__ import annotations

from typing import Any

from tests.operator.unit.conftest import find, names_of, render


def test_one_service_account_per_component_without_token(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    expected = {
        f"rag-prod-{c}"
        for c in ("gateway", "ingestion", "workers", "retrieval", "generation", "conversation", "pgbouncer", "qdrant")
    }
    assert names_of(children, "ServiceAccount") == expected
    for name in expected:
        assert find(children, "ServiceAccount", name)["automountServiceAccountToken"] is False


def test_each_deployment_runs_as_its_own_service_account(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    for deployment in (c for c in children if c["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == deployment["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False


def test_external_vector_store_has_no_qdrant_service_account(minimal: dict[str, Any]) -> None:
    minimal["vectorStore"] = {"external": {"url": "https://qdrant.example:6333"}}

    assert "demo-qdrant" not in names_of(render(minimal), "ServiceAccount")
