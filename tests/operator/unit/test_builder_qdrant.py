"""The managed Qdrant: StatefulSet with volumes, headless and client Services, snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.conftest import find, names_of, render


def _statefulset(children: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(children, "StatefulSet", name)


def test_single_node_runs_standalone_with_a_volume(minimal: dict[str, Any]) -> None:
    children = render(minimal)
    sts = _statefulset(children, "demo-qdrant")
    container = sts["spec"]["template"]["spec"]["containers"][0]

    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "demo-qdrant-headless"
    assert "command" not in container
    assert container["image"] == "docker.io/qdrant/qdrant:v1.19.0-unprivileged"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "storageClassName" not in claim["spec"]
    # Deleting the platform must not delete the vectors.
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_three_nodes_form_a_cluster_through_the_headless_service(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")
    sts = _statefulset(children, "rag-prod-qdrant")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}

    assert sts["spec"]["replicas"] == 3
    assert env["QDRANT__CLUSTER__ENABLED"]["value"] == "true"
    assert env["QDRANT__SERVICE__API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "ragplatform-qdrant", "key": "apiKey"}
    }
    script = container["command"][2]
    assert '--bootstrap "http://rag-prod-qdrant-0.rag-prod-qdrant-headless.rag-test.svc:6335"' in script
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp3"
    headless = find(children, "Service", "rag-prod-qdrant-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"] for p in headless["spec"]["ports"]} == {"http", "grpc", "p2p"}


@pytest.mark.parametrize("tier", ["retrieval", "workers"])
def test_retrieval_and_workers_use_the_client_service_with_the_api_key(production: dict[str, Any], tier: str) -> None:
    children = render(production, name="rag-prod")
    client = find(children, "Service", "rag-prod-qdrant")
    container = find(children, "Deployment", f"rag-prod-{tier}")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}

    assert {p["port"] for p in client["spec"]["ports"]} == {6333, 6334}
    assert env["RAG_VECTOR_URL"]["value"] == "http://rag-prod-qdrant.rag-test.svc:6333"
    assert env["RAG_VECTOR_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "ragplatform-qdrant"
    assert env["RAG_VECTOR_COLLECTION"]["value"] == "ragplatform_chunks"


def test_snapshot_cronjob_snapshots_the_collection_on_every_node(production: dict[str, Any]) -> None:
    cron = find(render(production, name="rag-prod"), "CronJob", "rag-prod-qdrant-snapshot")
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]

    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert "seq 0 2" in container["command"][2]
    assert "/collections/ragplatform_chunks/snapshots" in container["command"][2]


def test_no_snapshot_schedule_no_cronjob(minimal: dict[str, Any]) -> None:
    assert names_of(render(minimal), "CronJob") == set()


def test_external_qdrant_renders_no_qdrant_objects(minimal: dict[str, Any]) -> None:
    minimal["vectorStore"] = {
        "external": {"url": "https://qdrant.example:6333", "apiKeySecretRef": {"name": "qdrant", "key": "key"}}
    }
    children = render(minimal)

    assert not [c for c in children if "qdrant" in c["metadata"]["name"]]
    retrieval = find(children, "Deployment", "demo-retrieval")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in retrieval["env"]}
    assert env["RAG_VECTOR_URL"]["value"] == "https://qdrant.example:6333"
    assert env["RAG_VECTOR_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "qdrant", "key": "key"}


def test_qdrant_pod_is_restricted_with_writable_paths_on_volumes(minimal: dict[str, Any]) -> None:
    pod = _statefulset(render(minimal), "demo-qdrant")["spec"]["template"]["spec"]
    container = pod["containers"][0]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/qdrant/storage", "/qdrant/snapshots", "/qdrant/init", "/tmp"} <= mounts
