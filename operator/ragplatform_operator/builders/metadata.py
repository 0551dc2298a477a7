"""Names, labels and owner references shared by every child of a RagPlatform.

Every child carries the `app.kubernetes.io/*` labels and one controller ownerReference to its
RagPlatform, so deleting the RagPlatform garbage-collects it and `kubectl get all -l
app.kubernetes.io/instance=NAME` lists the whole platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragplatform_operator import API_GROUP, API_VERSION, KIND

Manifest = dict[str, Any]

APP_NAME = "ragplatform"
MANAGED_BY = "ragplatform-operator"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True)
class Owner:
    """The RagPlatform whose children are being built."""

    name: str
    namespace: str
    uid: str

    def child_name(self, component: str) -> str:
        """Name of the child for `component`, e.g. `demo-gateway`."""
        return f"{self.name}-{component}"

    def service_address(self, component: str, port: int) -> str:
        """`host:port` of a component's Service, resolvable from any namespace."""
        return f"{self.child_name(component)}.{self.namespace}.svc:{port}"


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """Labels that select one component's pods; immutable once a Deployment exists."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        INSTANCE_LABEL: owner.name,
        COMPONENT_LABEL: component,
    }


def labels(owner: Owner, component: str) -> dict[str, str]:
    """All standard labels of one component's objects."""
    return {
        **selector_labels(owner, component),
        "app.kubernetes.io/part-of": APP_NAME,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    """A controller reference to the RagPlatform; children are deleted with it."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(owner: Owner, component: str, name: str | None = None) -> dict[str, Any]:
    """metadata of a child: name, namespace, labels and the owner reference."""
    return {
        "name": name or owner.child_name(component),
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [owner_reference(owner)],
    }
