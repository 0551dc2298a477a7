"""Pieces every rendered pod shares: the "restricted" security contexts, /tmp, resources.

Every pod the operator renders satisfies the Kubernetes "restricted" Pod Security Standard:
non-root with a numeric user, no privilege escalation, every capability dropped, the
RuntimeDefault seccomp profile, and a read-only root filesystem with an emptyDir for /tmp.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.spec import ResourceRequirements

# The user the services image runs as (see Dockerfile.services).
SERVICES_UID = 10001


def pod_security_context(uid: int, gid: int | None = None) -> dict[str, Any]:
    """Pod-level security context: a numeric non-root user and RuntimeDefault seccomp."""
    group = uid if gid is None else gid
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": group,
        "fsGroup": group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level security context of the restricted profile."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tmp_volume(size_limit: str = "1Gi") -> dict[str, Any]:
    """A pod-local emptyDir for /tmp; the root filesystem is read-only."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": size_limit}}


TMP_MOUNT: dict[str, Any] = {"name": "tmp", "mountPath": "/tmp"}


def merged_resources(defaults: dict[str, dict[str, str]], given: ResourceRequirements | None) -> dict[str, Any]:
    """The container's resources: `given` merged key by key over `defaults`.

    Merging (rather than replacing) keeps a CPU request in place for the HPA when a user only
    raises the memory limit.
    """
    requests: dict[str, Any] = dict(defaults.get("requests", {}))
    limits: dict[str, Any] = dict(defaults.get("limits", {}))
    if given is not None:
        requests.update(given.requests or {})
        limits.update(given.limits or {})
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = {key: str(value) for key, value in requests.items()}
    if limits:
        resources["limits"] = {key: str(value) for key, value in limits.items()}
    return resources


def image_pull_secrets(names: list[str] | None) -> list[dict[str, str]]:
    """imagePullSecrets entries for the given Secret names."""
    return [{"name": name} for name in names or []]
