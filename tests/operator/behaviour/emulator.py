"""A Kubernetes API emulator for the operator's behaviour tests: kmock's, plus what it lacks.

kmock's `KubernetesEmulator` (by kopf's author) keeps objects in memory and serves list, watch,
get, create, patch and delete. Two things the operator relies on are added here:

* server-side apply creates a missing object (kmock answers a PATCH to a missing object 404);
* objects get `metadata.uid`, `creationTimestamp`, `generation` and `resourceVersion`; a change
  to `spec` bumps `generation` and every write bumps `resourceVersion`, as the real API server
  does (kopf tests `resourceVersion` in its JSON patches; status conditions read `generation`);
* `metadata.generateName` gets a unique name (kopf posts Events that way);
* every create and merge/apply write records its field manager in `metadata.managedFields`
  (manager from `?fieldManager=`, operation `Apply` or `Update`, subresource, time), as the real
  API server does, without the field sets; the child watchers read who wrote last;
* `list_requests` counts list requests per resource plural (a reconcile pass lists every child
  kind), so a test can show that no pass runs.

Patches stay plain recursive dict merges: there is no field ownership, no defaulting and no
resourceVersion conflicts. The tests do not rely on more than that.
"""

from __future__ import annotations

import collections
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
_REQUEST_LOG_SIZE = 32
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with server-side-apply creation and uid/generation bookkeeping."""

    _revision: int = 0
    list_requests: collections.Counter[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.list_requests = collections.Counter()

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def declare_resources(self) -> None:
        for key, info in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(verbs=VERBS, **info)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # kmock logs every request and matches each new one against that whole log, so serving
        # gets slower with every request (quadratic). The tests assert on objects, not on the
        # request log: keep only the latest requests (the current one is the last).
        del self._requests[:-_REQUEST_LOG_SIZE]
        for payload in self._payloads:  # each reaction keeps its own log too
            del payload._requests[:-_REQUEST_LOG_SIZE]
        if request.resource is not None and request.action == enums.action.LIST:
            self.list_requests[str(request.resource.plural)] += 1
        if request.resource is not None and request.action == enums.action.UPDATE and request.name is not None:
            key: kmock.ObjectKey = (request.resource, request.namespace, request.name)
            if isinstance(request.data, list):
                self._json_patch(key, request.data)
            elif isinstance(request.data, dict):
                self._record_manager(key, request)
                await self._merge_or_apply(key, request)
        elif request.resource is not None and request.action == enums.action.CREATE and isinstance(request.data, dict):
            self._stamp(request.data)
            self._record_manager(None, request)
        return await super()._handle(request)

    def _record_manager(self, key: kmock.ObjectKey | None, request: rendering.Request) -> None:
        """Put the writer's entry into the object's managedFields (replacing its previous one)."""
        content_type = request.headers.get("Content-Type", "")
        entry = {
            "manager": request.params.get("fieldManager", "unknown"),
            "operation": "Apply" if content_type.startswith(APPLY_PATCH) else "Update",
            "apiVersion": request.data.get("apiVersion", ""),
            "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fieldsType": "FieldsV1",
        }
        if request.subresource:
            entry["subresource"] = request.subresource
        same = ("manager", "operation", "subresource")
        previous: list[dict[str, Any]] = []
        if key is not None and key in self.objects and not self.objects[key].deleted:
            previous = self.objects[key].get("metadata", {}).get("managedFields") or []
        kept = [e for e in previous if any(e.get(k) != entry.get(k) for k in same)]
        request.data.setdefault("metadata", {})["managedFields"] = [*kept, entry]

    def _json_patch(self, key: kmock.ObjectKey, ops: list[dict[str, Any]]) -> None:
        # A failed `test` of resourceVersion is a conflict: 422, as the real API server answers
        # (kopf then re-reads and retries); kmock itself would answer 500.
        current = self.objects[key].get("metadata", {}).get("resourceVersion") if key in self.objects else None
        for op in ops:
            if op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion" and op["value"] != current:
                raise kmock.KubernetesError(status=422, reason="Invalid", message="resourceVersion changed")
        ops.append({"op": "add", "path": "/metadata/resourceVersion", "value": self._next_revision()})

    async def _merge_or_apply(self, key: kmock.ObjectKey, request: rendering.Request) -> None:
        data: dict[str, Any] = request.data
        exists = key in self.objects and not self.objects[key].deleted
        if not exists and request.headers.get("Content-Type", "").startswith(APPLY_PATCH):
            # Server-side apply of a missing object creates it: emulate a create here; kmock then
            # merges the same data again as a patch (a no-op).
            self._stamp(data)
            async with self._lock:
                if key in self.objects:
                    self.objects[key].create(data)
                else:
                    self.objects[key] = data
                raw = self.objects[key].raw
                assert request.resource is not None
                await self._buses[request.resource].put({"type": "ADDED", "object": raw})
        elif exists:
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = self._next_revision()
            changes_spec = "spec" in data and data["spec"] != self.objects[key].get("spec")
            if request.subresource is None and changes_spec:
                meta["generation"] = self.objects[key].get("metadata", {}).get("generation", 1) + 1

    def _stamp(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        if "name" not in meta and "generateName" in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:10]
        meta["resourceVersion"] = self._next_revision()
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
