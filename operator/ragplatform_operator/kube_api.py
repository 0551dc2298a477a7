"""The operator's own API calls, through lightkube's asyncio client (server-side apply included).

lightkube loads credentials as kopf's `login_via_client` does, from the same places in the same
order: the pod's service account (re-reading the rotated token), else the kubeconfig (KUBECONFIG
or ~/.kube/config, exec plugins and client certificates included). Objects stay plain dicts,
addressed by `apiVersion` + `kind`: the operator only touches the kinds in `RESOURCES`, each
served through a lightkube generic resource, so no discovery is needed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import CascadeType, PatchType

from ragplatform_operator import API_GROUP, API_VERSION, PLURAL
from ragplatform_operator.child_events import OwnWrites
from ragplatform_operator.redaction import redact_secrets

FIELD_MANAGER = "ragplatform-operator"
_TIMEOUT = httpx2.Timeout(30.0)


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
# Every kind whose events wake the owner's repair loop: the children, the optional add-ons
# (kopf starts watching an add-on kind when its CRD appears and only warns, once, that it is
# "unresolved" on a cluster without it) and the generated internal-token Secret.
WATCHED_KINDS: tuple[ResourceKind, ...] = (*CHILD_KINDS, *OPTIONAL_CHILD_KINDS, SECRET)
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


@functools.cache
def _generic(resource: ResourceKind) -> Any:
    """lightkube's generic (dict-based) resource class for one kind."""
    group, _, version = resource.api_version.rpartition("/")
    return create_namespaced_resource(group, version, resource.kind, resource.plural)


_CRD = create_global_resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions")


def _as_dict(obj: Any) -> dict[str, Any]:
    raw: dict[str, Any] = obj.to_dict()
    return raw


class KubeApi:
    """The operator's own API calls (kopf does its own for watching, events and progress).

    Every failure surfaces as `KubeApiError` with the HTTP status (0: the server was not reached).
    """

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        # What this client wrote last: the child watchers ignore the events of these writes.
        self.own_writes = OwnWrites()

    @classmethod
    def from_environment(cls) -> KubeApi:
        """In a pod: its service account; elsewhere: the current kubeconfig context."""
        return cls(AsyncClient(config=KubeConfig.from_env(), field_manager=FIELD_MANAGER, timeout=_TIMEOUT))

    @classmethod
    def for_url(cls, url: str) -> KubeApi:
        """An unauthenticated client of the API server at `url` (tests, benchmarks)."""
        config = KubeConfig.from_dict(
            {
                "clusters": [{"name": "server", "cluster": {"server": url.rstrip("/")}}],
                "users": [{"name": "anonymous", "user": {}}],
                "contexts": [{"name": "server", "context": {"cluster": "server", "user": "anonymous"}}],
                "current-context": "server",
            }
        )
        return cls(AsyncClient(config=config, field_manager=FIELD_MANAGER, timeout=_TIMEOUT))

    async def aclose(self) -> None:
        """Release the connection pool (from the event loop that used the client)."""
        await self._client.close()

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply `manifest` under the operator's field manager, taking over conflicts."""
        resource = resource_of(manifest["apiVersion"], manifest["kind"])
        what = f"apply {manifest['kind']} {manifest['metadata'].get('name')}"
        async with _translated_errors(what):
            applied = _as_dict(await self._client.apply(_generic(resource).from_dict(manifest), force=True))
        self.own_writes.record(applied)
        return applied

    async def get(self, resource: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            async with _translated_errors(f"get {resource.kind} {namespace}/{name}"):
                return _as_dict(await self._client.get(_generic(resource), name, namespace=namespace))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, resource: ResourceKind, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects of one kind in a namespace carrying all `labels` (items get their kind set)."""
        async with _translated_errors(f"list {resource.plural} in {namespace}"):
            items = [
                _as_dict(item)
                async for item in self._client.list(_generic(resource), namespace=namespace, labels=dict(labels))
            ]
        # Lists omit each item's apiVersion and kind; put them back so items read like manifests.
        return [{**item, "apiVersion": resource.api_version, "kind": resource.kind} for item in items]

    async def delete(self, resource: ResourceKind, namespace: str, name: str) -> bool:
        """Delete an object in the background; False when it was already gone."""
        self.own_writes.record_deletion((resource.kind, namespace, name))
        try:
            async with _translated_errors(f"delete {resource.kind} {namespace}/{name}"):
                await self._client.delete(_generic(resource), name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def crd_installed(self, name: str) -> bool:
        """Whether the CustomResourceDefinition `name` (e.g. podmonitors.monitoring.coreos.com)
        exists. A 403 (RBAC of an older chart without `get` on CRDs) counts as absent."""
        try:
            async with _translated_errors(f"get CustomResourceDefinition {name}"):
                await self._client.get(_CRD, name)
        except KubeApiError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True

    async def patch_platform_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch a RagPlatform's status subresource (None values delete keys)."""
        async with _translated_errors(f"patch the status of RagPlatform {namespace}/{name}"):
            await self._client.patch(
                _generic(PLATFORM).Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
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


@contextlib.asynccontextmanager
async def _translated_errors(what: str) -> AsyncIterator[None]:
    """lightkube's and httpx2's errors as `KubeApiError` saying what failed."""
    try:
        yield
    # The API server's messages may quote values of the objects (e.g. an env URL with a password).
    except ApiError as exc:
        raise KubeApiError(int(exc.status.code or 0), redact_secrets(f"{what}: {exc.status.message or exc}")) from None
    except httpx2.HTTPStatusError as exc:  # an error answer that is not a Kubernetes Status
        code = exc.response.status_code
        raise KubeApiError(code, redact_secrets(f"{what}: HTTP {code}: {exc.response.text[:300]}")) from None
    except httpx2.TransportError as exc:
        raise KubeApiError(0, redact_secrets(f"{what}: cannot reach the API server: {exc}")) from None
