"""Opt-in: the CRD's rules and the operator against a real API server.

Runs only when KUBECONFIG points at a reachable cluster where the caller may install the CRD and
create namespaces (kind, k3d, a dev cluster); skipped otherwise, with the reason. Each test works
in its own namespace, deleted afterwards; the CRD is applied server-side and left installed.
What it shows that the emulator cannot: the API server itself evaluates the CEL rules (with
their messages, transition rules included), field managers and managedFields are real, and the
operator's watches, server-side apply and status writes work with the kubeconfig's credentials.

    KUBECONFIG=~/.kube/config pytest tests/operator/real_cluster -rs
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import yaml

from ragplatform_operator.config import OperatorConfig
from tests.operator.behaviour.harness import EXAMPLE, OperatorThread, eventually
from tests.operator.unit.crd_evaluation import CRD_PATH

pytestmark = pytest.mark.real_cluster


def _cluster_unavailable() -> str | None:
    """Why this module cannot run here, or None when it can."""
    if not os.environ.get("KUBECONFIG"):
        return "KUBECONFIG is not set: point it at a cluster (kind, k3d, a dev cluster) to run these tests"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    probe = subprocess.run(
        ["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=15, check=False
    )
    if probe.returncode != 0:
        return f"the API server in KUBECONFIG is not reachable: {probe.stderr.strip()[:200]}"
    return None


_UNAVAILABLE = _cluster_unavailable()
if _UNAVAILABLE is not None:
    pytest.skip(_UNAVAILABLE, allow_module_level=True)


def kubectl(*args: str, namespace: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", *(["-n", namespace] if namespace else []), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def get(kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    found = kubectl("get", kind, name, "-o", "json", namespace=namespace)
    return json.loads(found.stdout) if found.returncode == 0 else None


@pytest.fixture(scope="module")
def crd_installed() -> None:
    applied = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    assert applied.returncode == 0, applied.stderr
    established = kubectl("wait", "--for=condition=Established", "crd/ragplatforms.ragplatform.io", "--timeout=60s")
    assert established.returncode == 0, established.stderr


@pytest.fixture
def namespace(crd_installed: None) -> Iterator[str]:
    name = f"rag-test-{uuid.uuid4().hex[:8]}"
    created = kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def platform_manifest(namespace: str, name: str = "demo") -> str:
    with open(EXAMPLE) as file:
        body: dict[str, Any] = yaml.safe_load(file)
    body["metadata"] = {"name": name, "namespace": namespace}
    return yaml.safe_dump(body)


def merge_patch(namespace: str, name: str, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl("patch", "rag", name, "--type", "merge", "-p", json.dumps({"spec": spec}), namespace=namespace)


def test_the_api_server_refuses_changes_that_would_orphan_the_vectors(namespace: str) -> None:
    created = kubectl("apply", "-f", "-", stdin=platform_manifest(namespace))
    assert created.returncode == 0, created.stderr

    refused = merge_patch(namespace, "demo", {"embedding": {"dimension": 768}})
    assert refused.returncode != 0
    assert "spec.embedding.dimension" in refused.stderr
    assert "embedding.dimension cannot change on a live platform" in refused.stderr
    refused = merge_patch(namespace, "demo", {"vectorStore": {"collection": "chunks_v2"}})
    assert "vectorStore.collection cannot change on a live platform" in refused.stderr
    # Other live changes go through.
    assert merge_patch(namespace, "demo", {"embedding": {"url": "https://other.example/v1"}}).returncode == 0


def test_the_api_server_evaluates_the_crds_other_rules(namespace: str) -> None:
    manifest = yaml.safe_load(platform_manifest(namespace))
    manifest["spec"]["workers"] = {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert refused.returncode != 0
    assert "minReplicas must be less than or equal to maxReplicas" in refused.stderr


@pytest.fixture
async def operator_on_cluster(namespace: str) -> AsyncIterator[str]:
    running = await OperatorThread.start_on_cluster(
        OperatorConfig(reconcile_interval_seconds=300, liveness_endpoint=None, log_format="plain"), namespace
    )
    try:
        yield namespace
    finally:
        await running.stop()


async def test_the_operator_repairs_a_deleted_and_a_hand_edited_child_within_seconds(
    operator_on_cluster: str,
) -> None:
    namespace = operator_on_cluster
    created = kubectl("apply", "-f", "-", stdin=platform_manifest(namespace))
    assert created.returncode == 0, created.stderr
    await eventually(lambda: get("deployment", "demo-workers", namespace), timeout=60, what="children")
    await eventually(
        lambda: ((get("rag", "demo", namespace) or {}).get("status") or {}).get("storedVectors"), timeout=60
    )

    assert kubectl("delete", "deployment", "demo-gateway", "--wait=false", namespace=namespace).returncode == 0
    await asyncio.sleep(0.5)
    await eventually(
        lambda: (
            (get("deployment", "demo-gateway", namespace) or {}).get("metadata", {}).get("deletionTimestamp") is None
            and get("deployment", "demo-gateway", namespace)
        ),
        timeout=5,
        what="the gateway Deployment recreated within 5 s (the timer is at 5 minutes)",
    )

    image = kubectl("set", "image", "deployment/demo-gateway", "gateway=attacker/rag:evil", namespace=namespace)
    assert image.returncode == 0, image.stderr

    def reverted() -> bool:
        live = get("deployment", "demo-gateway", namespace) or {}
        return "attacker" not in live["spec"]["template"]["spec"]["containers"][0]["image"]

    await eventually(reverted, timeout=5, what="the image edit reverted within 5 s")
