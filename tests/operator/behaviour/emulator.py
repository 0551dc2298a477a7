"""A Kubernetes API emulator for the operator's behaviour tests: kmock's, plus what it lacks.

kmock's `KubernetesEmulator` (by kopf's author) keeps objects in memory and serves list, watch,
get, create, patch and delete. Two things the operator relies on are added here:

* server-side apply creates a missing object (kmock answers a PATCH to a missing object 404);
* objects get `metadata.uid`, `creationTimestamp` and `generation`, and a change to `spec`
  bumps `generation`, as the real API server does (kopf and the status conditions read them).

Patches stay plain recursive dict merges: there are no field managers, no defaulting and no
resourceVersion conflicts. The tests do not rely on more than that.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import enums, rendering

APPLY_PATCH = "application/apply-patch+yaml"

# Every resource the operator and kopf touch must be declared, or kopf waits for it forever.
RESOURCES: dict[str, dict[str, Any]] = {
    "apiextensions.k8s.io/v1/customresourcedefinitions": {"kind": "CustomResourceDefinition", "namespaced": False},
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/serviceaccounts": {"kind": "ServiceAccount", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True, "subresources": {"status", "scale"}},
    "apps/v1/statefulsets": {"kind": "StatefulSet", "namespaced": True, "subresources": {"status", "scale"}},
    "autoscaling/v2/horizontalpodautoscalers": {"kind": "HorizontalPodAutoscaler", "namespaced": True},
    "policy/v1/poddisruptionbudgets": {"kind": "PodDisruptionBudget", "namespaced": True},
    "networking.k8s.io/v1/networkpolicies": {"kind": "NetworkPolicy", "namespaced": True},
    "batch/v1/cronjobs": {"kind": "CronJob", "namespaced": True},
    "ragplatform.io/v1alpha1/ragplatforms": {
        "kind": "RagPlatform",
        "singular": "ragplatform",
        "shortnames": {"rag"},
        "namespaced": True,
        "subresources": {"status"},
    },
}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with server-side-apply creation and uid/generation bookkeeping."""

    def declare_resources(self) -> None:
        for key, info in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(verbs=VERBS, **info)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and isinstance(request.data, dict):
            key = (request.resource, request.namespace, request.name)
            is_apply = request.headers.get("Content-Type", "").startswith(APPLY_PATCH)
            if request.action == enums.action.UPDATE and request.name is not None:
                exists = key in self.objects and not self.objects[key].deleted
                if is_apply and not exists:
                    # Server-side apply of a missing object creates it: emulate as a create.
                    self._stamp(request.data)
                    async with self._lock:
                        if key in self.objects:
                            self.objects[key].create(request.data)
                        else:
                            self.objects[key] = request.data
                        raw = self.objects[key].raw
                        await self._buses[request.resource].put({"type": "ADDED", "object": raw})
                elif exists and request.subresource is None and "spec" in request.data:
                    if request.data["spec"] != self.objects[key].get("spec"):
                        generation = self.objects[key].get("metadata", {}).get("generation", 1)
                        request.data.setdefault("metadata", {})["generation"] = generation + 1
            elif request.action == enums.action.CREATE:
                self._stamp(request.data)
        return await super()._handle(request)

    @staticmethod
    def _stamp(obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
