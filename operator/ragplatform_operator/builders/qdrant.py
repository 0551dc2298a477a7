"""The managed Qdrant vector store: StatefulSet, headless and client Services, PDB, snapshots.

One replica runs Qdrant standalone; more run it in distributed mode: pod 0 starts the cluster
and every other pod bootstraps from it over the peer port (6335), found through the headless
Service. Volumes are kept when the StatefulSet is scaled down or deleted (retention policy
`Retain`): losing vectors must take a deliberate `kubectl delete pvc`.

The unprivileged Qdrant image runs as uid 1000 with a read-only root filesystem: storage and
snapshots live on the volume, Qdrant's "initialized" marker and /tmp on emptyDirs.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.env import QDRANT_PORTS
from ragplatform_operator.builders.metadata import Manifest, Owner, labels, object_meta, selector_labels
from ragplatform_operator.builders.pod import (
    TMP_MOUNT,
    container_security_context,
    image_pull_secrets,
    merged_resources,
    pod_security_context,
    tmp_volume,
)
from ragplatform_operator.spec import ManagedQdrantSpec, PlatformSpec

COMPONENT = "qdrant"
SNAPSHOT_COMPONENT = "qdrant-snapshot"
QDRANT_UID = 1000
QDRANT_GID = 2000
SNAPSHOT_IMAGE = "docker.io/curlimages/curl:8.11.1"
CURL_UID = 100
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "1Gi"}}


def qdrant_image(managed: ManagedQdrantSpec) -> str:
    """The image of the managed Qdrant: `image` if set, else the unprivileged image of `version`."""
    return managed.image or f"docker.io/qdrant/qdrant:v{managed.version}-unprivileged"


def headless_service_name(owner: Owner) -> str:
    """Name of the headless Service giving each Qdrant pod a stable DNS name."""
    return owner.child_name("qdrant-headless")


def _peer_host(owner: Owner, pod: str) -> str:
    return f"{pod}.{headless_service_name(owner)}.{owner.namespace}.svc"


def _cluster_command(owner: Owner) -> list[str]:
    # Pod 0 founds the cluster; the others join it. Each announces its own stable peer URI.
    first = _peer_host(owner, owner.child_name(COMPONENT) + "-0")
    headless = f"{headless_service_name(owner)}.{owner.namespace}.svc"
    p2p = QDRANT_PORTS["p2p"]
    script = (
        "set -e\n"
        f'uri="http://${{HOSTNAME}}.{headless}:{p2p}"\n'
        'if [ "${HOSTNAME##*-}" = "0" ]; then\n'
        '  exec ./entrypoint.sh --uri "$uri"\n'
        "fi\n"
        f'exec ./entrypoint.sh --bootstrap "http://{first}:{p2p}" --uri "$uri"\n'
    )
    return ["/bin/bash", "-c", script]


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def build_qdrant_statefulset(owner: Owner, spec: PlatformSpec, managed: ManagedQdrantSpec) -> Manifest:
    """The StatefulSet `<platform>-qdrant` with one volume claim per replica."""
    env: list[dict[str, Any]] = [
        {"name": "QDRANT_INIT_FILE_PATH", "value": "/qdrant/init/.qdrant-initialized"},
        {"name": "QDRANT__STORAGE__SNAPSHOTS_PATH", "value": "/qdrant/snapshots"},
        {"name": "QDRANT__TELEMETRY_DISABLED", "value": "true"},
    ]
    if managed.api_key_secret_ref is not None:
        ref = managed.api_key_secret_ref
        env.append(
            {
                "name": "QDRANT__SERVICE__API_KEY",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    container: dict[str, Any] = {
        "name": "qdrant",
        "image": qdrant_image(managed),
        "imagePullPolicy": spec.image_pull_policy,
        "env": env,
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in QDRANT_PORTS.items()],
        "resources": merged_resources({"requests": DEFAULT_RESOURCES["requests"]}, managed.resources),
        # Loading large collections at start-up can take minutes.
        "startupProbe": _http_probe("/livez", period=5, failures=120),
        "readinessProbe": _http_probe("/readyz", period=5, failures=3),
        "livenessProbe": _http_probe("/livez", period=10, failures=6),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/qdrant/storage", "subPath": "storage"},
            {"name": "data", "mountPath": "/qdrant/snapshots", "subPath": "snapshots"},
            {"name": "init", "mountPath": "/qdrant/init"},
            TMP_MOUNT,
        ],
    }
    if managed.replicas > 1:
        container["command"] = _cluster_command(owner)
        env.append({"name": "QDRANT__CLUSTER__ENABLED", "value": "true"})
    pod_spec: dict[str, Any] = {
        "serviceAccountName": owner.child_name(COMPONENT),
        "automountServiceAccountToken": False,
        "securityContext": {
            **pod_security_context(QDRANT_UID, QDRANT_GID),
            "fsGroupChangePolicy": "OnRootMismatch",
        },
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [{"name": "init", "emptyDir": {"sizeLimit": "1Mi"}}, tmp_volume()],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = image_pull_secrets(spec.image_pull_secrets)
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": managed.storage.size}},
    }
    if managed.storage.storage_class_name:
        claim_spec["storageClassName"] = managed.storage.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(owner, COMPONENT),
        "spec": {
            "replicas": managed.replicas,
            "serviceName": headless_service_name(owner),
            # Peers must all be up for a distributed cluster to form; start them together.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {"metadata": {"labels": labels(owner, COMPONENT)}, "spec": pod_spec},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": labels(owner, COMPONENT)}, "spec": claim_spec}
            ],
        },
    }


def build_qdrant_headless_service(owner: Owner) -> Manifest:
    """The headless Service of the StatefulSet; publishes not-ready pods so peers find each other."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, COMPONENT, headless_service_name(owner)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(owner, COMPONENT),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                for name, port in QDRANT_PORTS.items()
            ],
        },
    }


def build_qdrant_client_service(owner: Owner) -> Manifest:
    """The Service `<platform>-qdrant` that RAG_VECTOR_URL points at (HTTP and gRPC APIs)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, COMPONENT),
        "spec": {
            "selector": selector_labels(owner, COMPONENT),
            "ports": [
                {"name": name, "port": QDRANT_PORTS[name], "targetPort": name, "protocol": "TCP"}
                for name in ("http", "grpc")
            ],
        },
    }


def build_qdrant_snapshot_cronjob(
    owner: Owner, spec: PlatformSpec, managed: ManagedQdrantSpec, schedule: str
) -> Manifest:
    """A CronJob that asks every Qdrant node for a snapshot of the platform's collection.

    Each node snapshots the shards it holds, into /qdrant/snapshots on its own volume.
    """
    collection = spec.vector_store.collection
    headless = f"{headless_service_name(owner)}.{owner.namespace}.svc"
    sts = owner.child_name(COMPONENT)
    script = (
        "set -eu\n"
        f"for i in $(seq 0 {managed.replicas - 1}); do\n"
        f'  url="http://{sts}-$i.{headless}:{QDRANT_PORTS["http"]}/collections/{collection}/snapshots?wait=true"\n'
        '  curl --fail --silent --show-error -X POST -H "api-key: ${QDRANT_API_KEY:-}" "$url"\n'
        "  echo\n"
        "done\n"
    )
    env: list[dict[str, Any]] = []
    if managed.api_key_secret_ref is not None:
        ref = managed.api_key_secret_ref
        env.append({"name": "QDRANT_API_KEY", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(CURL_UID),
        "containers": [
            {
                "name": "snapshot",
                "image": SNAPSHOT_IMAGE,
                "imagePullPolicy": spec.image_pull_policy,
                "command": ["/bin/sh", "-c", script],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": container_security_context(),
            }
        ],
    }
    if env:
        pod_spec["containers"][0]["env"] = env
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": object_meta(owner, SNAPSHOT_COMPONENT),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(owner, SNAPSHOT_COMPONENT)},
                "spec": {
                    "backoffLimit": 3,
                    "template": {"metadata": {"labels": labels(owner, SNAPSHOT_COMPONENT)}, "spec": pod_spec},
                },
            },
        },
    }
