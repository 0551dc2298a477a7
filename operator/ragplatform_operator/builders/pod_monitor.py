"""A Prometheus Operator PodMonitor for every tier's metrics port.

A PodMonitor rather than a ServiceMonitor because the ingestion workers have no Service (they
serve no gRPC clients), yet their queue and job metrics matter most. It is rendered only when the
cluster has the PodMonitor CRD (the reconciler checks) and `spec.observability.serviceMonitor`
is enabled; Prometheus then scrapes the port named `metrics` of each tier's pods.
"""

from __future__ import annotations

from ragplatform_operator.builders.metadata import (
    APP_NAME,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    Manifest,
    Owner,
    object_meta,
)
from ragplatform_operator.spec import TIER_NAMES, PlatformSpec

COMPONENT = "metrics"


def build_pod_monitor(owner: Owner, spec: PlatformSpec) -> Manifest:
    """The PodMonitor `<platform>-metrics`, selecting the pods of every tier of this platform."""
    settings = spec.observability.service_monitor
    meta = object_meta(owner, COMPONENT)
    meta["labels"] = {**(settings.labels or {}), **meta["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta,
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": APP_NAME, INSTANCE_LABEL: owner.name},
                "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": list(TIER_NAMES)}],
            },
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": settings.interval}],
            # the tier (component label) becomes a label of every series, for per-tier RED queries
            "podTargetLabels": [COMPONENT_LABEL],
        },
    }
