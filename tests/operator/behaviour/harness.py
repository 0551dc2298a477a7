"""The behaviour tests' harness: the operator in a thread, and the emulated cluster as tests see it.

Also used by bench/operator_reconcile.py.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kmock
import kopf
import yaml

from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.handlers import build_registry
from ragplatform_operator.kube_api import KubeApi
from ragplatform_operator.queue_depth import QueueDepthReader
from ragplatform_operator.reconcile import Reconciler
from tests.operator.behaviour.emulator import ApiServerEmulator

NAMESPACE = "rag-test"
PLATFORMS = "ragplatform.io/v1alpha1/ragplatforms"
PLATFORMS_PATH = f"/apis/ragplatform.io/v1alpha1/namespaces/{NAMESPACE}/ragplatforms"
EXAMPLE = "examples/minimal.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def minimal_platform(name: str = "demo", **spec_overrides: Any) -> dict[str, Any]:
    """examples/minimal.yaml as a RagPlatform named `name`, with spec keys replaced."""
    with open(EXAMPLE) as file:
        body: dict[str, Any] = yaml.safe_load(file)
    body["metadata"] = {"name": name, "namespace": NAMESPACE}
    body["spec"] = {**copy.deepcopy(body["spec"]), **spec_overrides}
    return body


@dataclass
class Cluster:
    """The emulated cluster as a test sees it: create, edit and inspect objects."""

    emu: ApiServerEmulator

    async def create_platform(self, body: dict[str, Any]) -> None:
        async with self.emu.post(PLATFORMS_PATH, json=body) as response:
            assert response.status < 300, await response.text()

    async def patch_platform_spec(self, name: str, spec: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.emu.patch(f"{PLATFORMS_PATH}/{name}", json={"spec": spec}, headers=headers) as response:
            assert response.status < 300, await response.text()

    async def create_secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}}
        async with self.emu.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", json={**body, "data": encoded}) as r:
            assert r.status < 300, await r.text()

    async def delete(self, resource: str, name: str) -> None:
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        async with self.emu.delete(f"{prefix}/namespaces/{NAMESPACE}/{plural}/{name}") as response:
            assert response.status < 300, await response.text()

    async def patch(
        self, resource: str, name: str, patch: dict[str, Any], *, field_manager: str = "kubectl-edit"
    ) -> None:
        """Merge-patch an object as another client (`field_manager`) would, e.g. `kubectl edit`."""
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        headers = {"Content-Type": "application/merge-patch+json"}
        path = f"{prefix}/namespaces/{NAMESPACE}/{plural}/{name}?fieldManager={field_manager}"
        async with self.emu.patch(path, json=patch, headers=headers) as r:
            assert r.status < 300, await r.text()

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), NAMESPACE, name)
        if key not in self.emu.objects or self.emu.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.emu.objects[key].raw
        return raw

    def platform(self, name: str = "demo") -> dict[str, Any]:
        body = self.get(PLATFORMS, name)
        assert body is not None
        return body

    def condition(self, type_: str, name: str = "demo") -> dict[str, Any] | None:
        for condition in (self.platform(name).get("status") or {}).get("conditions") or []:
            if condition["type"] == type_:
                return dict(condition)
        return None

    def children(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every live object but the platform, namespaces and events, by (kind, name)."""
        out = {}
        for (resource, _, name), obj in self.emu.objects.items():
            if obj.deleted or resource.plural in ("ragplatforms", "namespaces", "events", "secrets"):
                continue
            out[(str(obj.raw.get("kind", resource.plural)), name)] = obj.raw
        return out

    def events(self) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, _, _), obj in self.emu.objects.items()
            if resource.plural == "events" and not obj.deleted
        ]

    def event_reasons(self) -> list[str]:
        return [str(event.get("reason")) for event in self.events()]


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value (returned), or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last_error: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return result
        except (AssertionError, KeyError, TypeError) as exc:  # not there yet: the status is written later
            last_error = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}") from last_error


@dataclass
class OperatorThread:
    """The operator (kopf with the real handlers) running in its own thread and event loop.

    kopf runs in a thread because on exit it cancels every task of its loop that it did not
    start with, which in the test's loop would include pytest's own tasks.
    """

    thread: threading.Thread
    stop_flag: threading.Event
    api: KubeApi
    failure: list[BaseException]

    @classmethod
    async def start(cls, url: str, config: OperatorConfig) -> OperatorThread:
        """The operator against the emulator at `url`, watching the test namespace."""
        registry = build_registry(config, login_via_client=False)

        @kopf.on.login(registry=registry)
        def login_to_emulator(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=url, insecure=True)

        settings = kopf.OperatorSettings()
        # kmock 0.8 cannot serve GET /api/v1/namespaces (its path parser fails on it), so kopf must
        # not scan namespaces; the operator watches the one test namespace by name.
        settings.scanning.disabled = True
        return await cls._run(registry, settings, KubeApi.for_url(url), NAMESPACE)

    @classmethod
    async def start_on_cluster(cls, config: OperatorConfig, namespace: str) -> OperatorThread:
        """The operator as it runs in production (kopf's own login, credentials from the
        environment) against the cluster KUBECONFIG points at, watching `namespace`."""
        return await cls._run(build_registry(config), kopf.OperatorSettings(), KubeApi.from_environment(), namespace)

    @classmethod
    async def _run(
        cls, registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings, api: KubeApi, namespace: str
    ) -> OperatorThread:
        stop_flag, ready_flag = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        registry=registry,
                        settings=settings,
                        standalone=True,
                        namespaces=[namespace],
                        memo=kopf.Memo(reconciler=Reconciler(api, QueueDepthReader())),
                        stop_flag=stop_flag,
                        ready_flag=ready_flag,
                    )
                )
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=run, name="kopf-operator", daemon=True)
        thread.start()
        running = cls(thread, stop_flag, api, failure)
        if not await asyncio.to_thread(ready_flag.wait, 10):
            await running.stop()
            raise AssertionError("the operator did not start within 10 s")
        return running

    async def stop(self) -> None:
        """Stop kopf and wait for its thread; fail if it hangs or failed."""
        self.stop_flag.set()
        # Join from a worker thread: the caller's loop must keep serving the emulator meanwhile.
        await asyncio.to_thread(self.thread.join, 20)
        assert not self.thread.is_alive(), "the operator did not stop within 20 s"
        assert not self.failure, f"the operator failed: {self.failure[0]!r}"
