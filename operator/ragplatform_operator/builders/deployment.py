"""The Deployment of one service tier (the workers included).

Each runs `ragplatform serve <service>` from the services image, serves gRPC on the port named
`grpc` (probed natively with the standard health service) and metrics on the port named
`metrics`, under the restricted pod security profile with an emptyDir at /tmp.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.env import GRPC_PORT, METRICS_PORT, build_tier_env
from ragplatform_operator.builders.internal_token import TOKEN_FINGERPRINT_ANNOTATION
from ragplatform_operator.builders.metadata import Manifest, Owner, labels, object_meta, selector_labels
from ragplatform_operator.builders.pod import (
    SERVICES_UID,
    TMP_MOUNT,
    container_security_context,
    image_pull_secrets,
    merged_resources,
    pod_security_context,
    tmp_volume,
)
from ragplatform_operator.spec import SERVICE_BY_TIER, PlatformSpec, TierName

# Requests sized for the small-node shape; limits only on memory (CPU limits throttle latency).
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "gateway": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "ingestion": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "workers": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "retrieval": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "generation": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "conversation": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
}


def _grpc_probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "grpc": {"port": GRPC_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_tier_container(owner: Owner, spec: PlatformSpec, tier: TierName) -> dict[str, Any]:
    """The one container of a tier's pods."""
    tier_spec = spec.tier(tier)
    service = SERVICE_BY_TIER[tier]
    return {
        "name": service,
        "image": tier_spec.image or spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["ragplatform"],
        "args": ["serve", service],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": build_tier_env(owner, spec, tier),
        "resources": merged_resources(DEFAULT_RESOURCES[tier], tier_spec.resources),
        # Start-up may apply database migrations: allow up to a minute before liveness counts.
        "startupProbe": _grpc_probe(period=2, failures=30),
        "readinessProbe": _grpc_probe(period=5, failures=2),
        "livenessProbe": _grpc_probe(period=10, failures=3),
        "securityContext": container_security_context(),
        "volumeMounts": [TMP_MOUNT],
    }


def build_tier_deployment(
    owner: Owner, spec: PlatformSpec, tier: TierName, replicas: int | None, token_fingerprint: str | None = None
) -> Manifest:
    """The Deployment `<platform>-<tier>`.

    `token_fingerprint` (of the generated internal token in force) goes into the pod template,
    so a new token rolls every tier onto it.

    `replicas` None leaves `spec.replicas` out of the manifest, so that with server-side apply
    the HorizontalPodAutoscaler owns the count and the operator never fights it.
    """
    tier_spec = spec.tier(tier)
    pod_labels = labels(owner, tier)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(owner, tier)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(METRICS_PORT),
                    "kubectl.kubernetes.io/default-container": SERVICE_BY_TIER[tier],
                },
            },
            "spec": {
                "serviceAccountName": owner.child_name(tier),
                "automountServiceAccountToken": False,
                "securityContext": pod_security_context(SERVICES_UID),
                "terminationGracePeriodSeconds": tier_spec.termination_grace_period_seconds,
                "containers": [build_tier_container(owner, spec, tier)],
                "volumes": [tmp_volume()],
                # Spread replicas over nodes when possible, never block scheduling for it.
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector_labels(owner, tier)},
                    }
                ],
            },
        },
    }
    if token_fingerprint is not None:
        deployment_spec["template"]["metadata"]["annotations"][TOKEN_FINGERPRINT_ANNOTATION] = token_fingerprint
    pod_spec = deployment_spec["template"]["spec"]
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = image_pull_secrets(spec.image_pull_secrets)
    if tier_spec.node_selector:
        pod_spec["nodeSelector"] = dict(tier_spec.node_selector)
    if tier_spec.tolerations:
        pod_spec["tolerations"] = [
            toleration.model_dump(by_alias=True, exclude_none=True) for toleration in tier_spec.tolerations
        ]
    if tier_spec.priority_class_name:
        pod_spec["priorityClassName"] = tier_spec.priority_class_name
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(owner, tier),
        "spec": deployment_spec,
    }
