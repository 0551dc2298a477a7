"""Services: headless for gRPC backends (per-call balancing), a normal one for the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.conftest import find, names_of, render


@pytest.mark.parametrize("tier", ["ingestion", "retrieval", "generation", "conversation"])
def test_backends_get_headless_services_on_the_grpc_port(minimal: dict[str, Any], tier: str) -> None:
    service = find(render(minimal), "Service", f"demo-{tier}")

    assert service["spec"]["clusterIP"] == "None"
    assert {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"} in (
        service["spec"]["ports"]
    )
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == tier


def test_gateway_service_is_a_normal_service_of_the_chosen_type(production: dict[str, Any]) -> None:
    service = find(render(production, name="rag-prod"), "Service", "rag-prod-gateway")

    assert "clusterIP" not in service["spec"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}


def test_workers_have_no_service(minimal: dict[str, Any]) -> None:
    assert "demo-workers" not in names_of(render(minimal), "Service")


def test_service_selectors_match_their_deployments_pods(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    for tier in ("gateway", "ingestion", "retrieval", "generation", "conversation", "pgbouncer"):
        service = find(children, "Service", f"rag-prod-{tier}")
        pod_labels = find(children, "Deployment", f"rag-prod-{tier}")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), tier
