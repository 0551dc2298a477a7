"""A small asyncio facade over the `kubernetes` client for the few calls the operator makes.

The `kubernetes` package handles every way of authenticating (in-cluster service account,
kubeconfig, exec plugins, client certificates); its calls are blocking, so each runs in a worker
thread. Objects are plain dicts, addressed by `apiVersion` + `kind`: the operator only touches
the kinds in `RESOURCES`, whose plural names are therefore known without discovery.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes

from ragplatform_operator import API_GROUP, API_VERSION, PLURAL
from ragplatform_operator.child_events import OwnWrites

FIELD_MANAGER = "ragplatform-operator"
_REQUEST_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class ResourceKind:
    """Where the API serves one kind: `apiVersion`, `kind` and the URL plural."""

    api_version: str
    kind: str
    plural: str


# Every kind the builders render (the operator lists these to prune what is no longer wanted),
# plus the two it reads. The Helm chart's RBAC grants exactly these.
CHILD_KINDS: tuple[ResourceKind, ...] = (
    ResourceKind("v1", "ServiceAccount", "serviceaccounts"),
    ResourceKind("v1", "ConfigMap", "configmaps"),
    ResourceKind("v1", "Service", "services"),
    ResourceKind("apps/v1", "Deployment", "deployments"),
    ResourceKind("apps/v1", "StatefulSet", "statefulsets"),
    ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ResourceKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ResourceKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ResourceKind("batch/v1", "CronJob", "cronjobs"),
)
# Kinds of optional add-ons: rendered, listed and pruned only when their CRD is installed.
POD_MONITOR = ResourceKind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors")
POD_MONITOR_CRD = "podmonitors.monitoring.coreos.com"
OPTIONAL_CHILD_KINDS: tuple[ResourceKind, ...] = (POD_MONITOR,)
SECRET = ResourceKind("v1", "Secret", "secrets")
PLATFORM = ResourceKind(f"{API_GROUP}/{API_VERSION}", "RagPlatform", PLURAL)
RESOURCES: dict[tuple[str, str], ResourceKind] = {
    (r.api_version, r.kind): r for r in (*CHILD_KINDS, *OPTIONAL_CHILD_KINDS, SECRET, PLATFORM)
}


class KubeApiError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def resource_of(api_version: str, kind: str) -> ResourceKind:
    """The `ResourceKind` of a manifest's apiVersion and kind; ValueError for unknown kinds."""
    try:
        return RESOURCES[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None


def object_path(resource: ResourceKind, namespace: str, name: str | None = None, subresource: str = "") -> str:
    """The URL path of a namespaced object (or of the collection when `name` is None)."""
    prefix = "/api/v1" if resource.api_version == "v1" else f"/apis/{resource.api_version}"
    path = f"{prefix}/namespaces/{quote(namespace)}/{resource.plural}"
    if name is not None:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeApi:
    """The operator's own API calls (kopf does its own for watching, events and progress)."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client
        # What this client wrote last: the child watchers ignore the events of these writes.
        self.own_writes = OwnWrites()

    @classmethod
    def from_environment(cls) -> KubeApi:
        """In a pod: its service account; elsewhere: the current kubeconfig context."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration))

    @classmethod
    def for_url(cls, url: str) -> KubeApi:
        """An unauthenticated client of the API server at `url` (tests, benchmarks)."""
        configuration = kubernetes.client.Configuration(host=url.rstrip("/"))
        return cls(kubernetes.client.ApiClient(configuration))

    def close(self) -> None:
        """Release the connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        serialized = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        _, url, headers, payload = serialized[0], serialized[1], serialized[2], serialized[3]
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=_REQUEST_TIMEOUT_SECONDS
            )
            response.read()  # type: ignore[no-untyped-call]
        except kubernetes.client.exceptions.ApiException as exc:
            raise KubeApiError(int(exc.status or 0), f"{method} {path}: {exc.reason}") from None
        except OSError as exc:  # urllib3's connection errors derive from it
            raise KubeApiError(0, f"{method} {path}: cannot reach the API server: {exc}") from None
        text = response.data.decode("utf-8") if response.data else ""
        if response.status >= 400:
            raise KubeApiError(response.status, f"{method} {path}: HTTP {response.status}: {_status_message(text)}")
        parsed = json.loads(text) if text else None
        return parsed if isinstance(parsed, dict) else None

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._call, method, path, body, query, content_type)

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply `manifest` under the operator's field manager, taking over conflicts."""
        resource = resource_of(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        path = object_path(resource, meta["namespace"], meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        applied = await self._request("PATCH", path, manifest, query, "application/apply-patch+yaml")
        self.own_writes.record(applied)
        return applied

    async def get(self, resource: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", object_path(resource, namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, resource: ResourceKind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Objects of one kind in a namespace matching a label selector (items get their kind set)."""
        answer = await self._request("GET", object_path(resource, namespace), query=[("labelSelector", label_selector)])
        items = (answer or {}).get("items") or []
        # Lists omit each item's apiVersion and kind; put them back so items read like manifests.
        return [{**item, "apiVersion": resource.api_version, "kind": resource.kind} for item in items]

    async def delete(self, resource: ResourceKind, namespace: str, name: str) -> bool:
        """Delete an object in the background; False when it was already gone."""
        self.own_writes.record_deletion((resource.kind, namespace, name))
        try:
            await self._request("DELETE", object_path(resource, namespace, name), {"propagationPolicy": "Background"})
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def crd_installed(self, name: str) -> bool:
        """Whether the CustomResourceDefinition `name` (e.g. podmonitors.monitoring.coreos.com)
        exists. A 403 (RBAC of an older chart without `get` on CRDs) counts as absent."""
        try:
            await self._request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{quote(name)}")
        except KubeApiError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True

    async def patch_platform_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch a RagPlatform's status subresource (None values delete keys)."""
        await self._request(
            "PATCH",
            object_path(PLATFORM, namespace, name, "status"),
            {"status": status},
            content_type="application/merge-patch+json",
        )

    async def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded; KubeApiError(404) when the Secret or the key is missing."""
        secret = await self.get(SECRET, namespace, name)
        if secret is None:
            raise KubeApiError(404, f"Secret {namespace}/{name} does not exist")
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            plain = (secret.get("stringData") or {}).get(key)
            if plain is None:
                raise KubeApiError(404, f"Secret {namespace}/{name} has no key {key!r}")
            return str(plain)
        return base64.b64decode(raw).decode("utf-8")


def _status_message(text: str) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:300]
    return str(parsed.get("message") or text[:300]) if isinstance(parsed, dict) else text[:300]
