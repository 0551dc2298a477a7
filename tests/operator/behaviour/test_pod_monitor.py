"""The PodMonitor follows the cluster: rendered only when the Prometheus Operator's CRD exists
(checked on every pass, so installing the Prometheus Operator later is picked up), never when it
does not (and nothing fails for want of it), and removed when the spec turns it off."""

from __future__ import annotations

import kmock

from tests.operator.behaviour.emulator import VERBS, ApiServerEmulator
from tests.operator.behaviour.harness import Cluster, eventually, minimal_platform

PODMONITORS = "monitoring.coreos.com/v1/podmonitors"


def install_prometheus_operator_crd(emulator: ApiServerEmulator) -> None:
    emulator.resources[PODMONITORS] = kmock.ResourceInfo(kind="PodMonitor", namespaced=True, verbs=VERBS)
    emulator.objects["apiextensions.k8s.io/v1/customresourcedefinitions", None, "podmonitors.monitoring.coreos.com"] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "podmonitors.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "names": {"kind": "PodMonitor", "plural": "podmonitors"}},
    }


async def test_no_prometheus_operator_no_pod_monitor_and_no_error(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-workers"), what="all children")
    await eventually(lambda: cluster.condition("Degraded"), what="status written")
    assert "PodMonitor" not in {kind for kind, _ in cluster.children()}
    degraded = cluster.condition("Degraded") or {}
    assert "applying the platform's objects failed" not in degraded.get("message", "")


async def test_pod_monitor_appears_once_the_crd_is_installed_and_goes_when_disabled(
    cluster: Cluster, emulator: ApiServerEmulator
) -> None:
    await cluster.create_platform(minimal_platform(observability={"serviceMonitor": {"labels": {"release": "kps"}}}))
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-workers"), what="all children")
    assert cluster.get(PODMONITORS, "demo-metrics") is None

    install_prometheus_operator_crd(emulator)
    monitor = await eventually(lambda: cluster.get(PODMONITORS, "demo-metrics"), what="the PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "RagPlatform"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    selector = monitor["spec"]["selector"]
    assert selector["matchLabels"]["app.kubernetes.io/instance"] == "demo"
    assert "workers" in selector["matchExpressions"][0]["values"]

    await cluster.patch_platform_spec("demo", {"observability": {"serviceMonitor": {"enabled": False}}})
    await eventually(lambda: cluster.get(PODMONITORS, "demo-metrics") is None, what="the PodMonitor removed")
