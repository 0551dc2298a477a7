"""Operator reconcile latency against the Kubernetes API emulator (kmock); prints figures.

1. create -> all children applied: kopf runs the operator's real handlers (in a thread, as in
   the behaviour tests); the clock runs from the RagPlatform's POST until every rendered child
   exists in the emulator.
2. one reconcile pass: `Reconciler.reconcile` called directly on an already reconciled platform,
   (a) timer-style (only drifted children applied) and (b) apply-all (after a spec change).
3. child deleted -> recreated: the operator with the default settings (drift timer 60 s), a
   child Deployment deleted; the clock runs until it exists again (the watch-triggered repair).
4. backlog -> scale decision: the default settings and a platform with default queue scaling,
   60 jobs put on a real Redis stream at once; the clock runs until the workers Deployment asks
   for more replicas (skipped without redis-server).

Run: .venv/bin/python bench/operator_reconcile.py [--rounds N]
The emulator is in-process Python, so absolute figures are upper bounds of the operator's own
cost plus the emulator's; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import kmock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform_operator.builders import build_children
from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.kube_api import KubeApi
from ragplatform_operator.queue_depth import QueueDepthReader
from ragplatform_operator.reconcile import PlatformMemory, Reconciler
from ragplatform_operator.spec import parse_spec
from tests.operator.behaviour.emulator import ApiServerEmulator
from tests.operator.behaviour.harness import (
    NAMESPACE,
    PLATFORMS,
    PLATFORMS_PATH,
    Cluster,
    OperatorThread,
    minimal_platform,
)
from tests.support.servers import RedisServer


def _children_present(emu: ApiServerEmulator, expected: list[tuple[str, str]]) -> bool:
    present = {(res.plural, name) for (res, _, name), obj in emu.objects.items() if not obj.deleted}
    return all(item in present for item in expected)


def _expected(body: dict[str, Any]) -> list[tuple[str, str]]:
    plural = {
        "ServiceAccount": "serviceaccounts",
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
        "StatefulSet": "statefulsets",
        "HorizontalPodAutoscaler": "horizontalpodautoscalers",
        "PodDisruptionBudget": "poddisruptionbudgets",
        "NetworkPolicy": "networkpolicies",
        "CronJob": "cronjobs",
    }
    children = build_children(body["metadata"]["name"], NAMESPACE, "x", parse_spec(body["spec"]), None)
    return [(plural[c["kind"]], c["metadata"]["name"]) for c in children]


async def create_to_applied(rounds: int) -> list[float]:
    figures = []
    config = OperatorConfig(reconcile_interval_seconds=60, autoscale_tick_seconds=60, liveness_endpoint=None)
    for i in range(rounds):
        async with ApiServerEmulator() as emu, kmock.Server(emu):
            emu.declare_resources()
            running = await OperatorThread.start(str(emu.url), config)
            body = minimal_platform(f"bench{i}")
            expected = _expected(body)
            started = time.perf_counter()
            async with emu.post(PLATFORMS_PATH, json=body) as response:
                assert response.status < 300
            while not _children_present(emu, expected):  # noqa: ASYNC110 - polling the emulator's memory
                await asyncio.sleep(0.005)
            figures.append(time.perf_counter() - started)
            await running.stop()
    return figures


async def one_pass(rounds: int) -> tuple[list[float], list[float], int]:
    async with ApiServerEmulator() as emu, kmock.Server(emu):
        emu.declare_resources()
        api = KubeApi.for_url(str(emu.url))
        reconciler = Reconciler(api, QueueDepthReader())
        async with emu.post(PLATFORMS_PATH, json=minimal_platform()) as response:
            assert response.status < 300
        logger = logging.getLogger("bench")
        memory = PlatformMemory()

        def body() -> dict[str, Any]:
            raw: dict[str, Any] = emu.objects[kmock.resource(PLATFORMS), NAMESPACE, "demo"].raw
            return raw

        await reconciler.reconcile(body(), memory, lambda *_: None, logger, apply_all=True)
        drift_only, apply_all = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            await reconciler.reconcile(body(), memory, lambda *_: None, logger, apply_all=False)
            drift_only.append(time.perf_counter() - started)
        for _ in range(rounds):
            started = time.perf_counter()
            await reconciler.reconcile(body(), memory, lambda *_: None, logger, apply_all=True)
            apply_all.append(time.perf_counter() - started)
        await api.aclose()
        return drift_only, apply_all, len(_expected(body()))


def _default_config(**overrides: Any) -> OperatorConfig:
    return OperatorConfig(liveness_endpoint=None, log_format="plain", **overrides)


async def _until(check: Any, timeout: float = 120.0) -> float:
    """Seconds until `check()` is true (polling the emulator's memory every 5 ms)."""
    started = time.perf_counter()
    while not check():
        assert time.perf_counter() - started < timeout, "timed out"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def _settled(emu: ApiServerEmulator, cluster: Cluster) -> None:
    await _until(lambda: cluster.get("apps/v1/deployments", "demo-workers") and cluster.condition("Ready"))
    while True:  # no reconcile pass (each lists ConfigMaps) for a second
        before = emu.list_requests["configmaps"]
        await asyncio.sleep(1.0)
        if emu.list_requests["configmaps"] == before:
            return


async def deleted_to_recreated(rounds: int) -> list[float]:
    figures = []
    async with ApiServerEmulator() as emu, kmock.Server(emu):
        emu.declare_resources()
        running = await OperatorThread.start(str(emu.url), _default_config())
        cluster = Cluster(emu)
        await cluster.create_platform(minimal_platform())
        await _settled(emu, cluster)
        for _ in range(rounds):
            await cluster.delete("apps/v1/deployments", "demo-gateway")
            figures.append(await _until(lambda: cluster.get("apps/v1/deployments", "demo-gateway")))
            await asyncio.sleep(1.0)
        await running.stop()
    return figures


async def backlog_to_decision(rounds: int, polling: int | None = None, tick: float | None = None) -> list[float]:
    """`polling`/`tick`: override the defaults (the previous ones were 15 s and 5 s)."""
    import redis.asyncio as aioredis  # only this figure needs it

    figures = []
    redis_server = RedisServer()
    redis_server.start()
    try:
        for i in range(rounds):
            async with ApiServerEmulator() as emu, kmock.Server(emu):
                emu.declare_resources()
                config = _default_config() if tick is None else _default_config(autoscale_tick_seconds=tick)
                running = await OperatorThread.start(str(emu.url), config)
                cluster = Cluster(emu)
                client = aioredis.Redis.from_url(redis_server.url)
                stream = f"ragplatform:queue:bench{i}"
                await client.xgroup_create(stream, "workers", id="0", mkstream=True)
                await cluster.create_secret("ragplatform-redis", {"url": redis_server.url})
                body = minimal_platform()
                body["spec"]["redis"] = {**body["spec"]["redis"], "queueName": f"bench{i}"}
                if polling is not None:
                    body["spec"]["workers"] = {"autoscaling": {"pollingIntervalSeconds": polling}}
                await cluster.create_platform(body)
                await _settled(emu, cluster)
                await asyncio.sleep(i * 1.7 % (polling or 2))  # land at different points of the interval

                def workers(cluster: Cluster = cluster) -> int:
                    deployment = cluster.get("apps/v1/deployments", "demo-workers") or {}
                    return int(deployment.get("spec", {}).get("replicas") or 0)

                before = workers()
                async with client.pipeline(transaction=True) as pipe:
                    for job in range(60):
                        pipe.xadd(stream, {"job": str(job)})
                    await pipe.execute()
                figures.append(await _until(lambda: workers() > before))  # noqa: B023 - awaited in this iteration
                await client.aclose()
                await running.stop()
    finally:
        redis_server.stop()
        redis_server.remove()
    return figures


def _fmt(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    drift_only, apply_all, children = await one_pass(args.rounds)
    created = await create_to_applied(args.rounds)
    print(f"RagPlatform examples/minimal.yaml: {children} children")
    print(f"create -> all children applied (kopf + emulator): {_fmt(created)}")
    print(f"one reconcile pass, nothing drifted (timer):      {_fmt(drift_only)}")
    print(f"one reconcile pass, apply everything:             {_fmt(apply_all)}")
    print(f"child deleted -> recreated (watch, default 60 s timer): {_fmt(await deleted_to_recreated(args.rounds))}")
    now = await backlog_to_decision(args.rounds)
    before = await backlog_to_decision(args.rounds, polling=15, tick=5.0)
    print(f"60 jobs queued -> workers scaled (default polling 2 s):   {_fmt(now)}")
    print(f"60 jobs queued -> workers scaled (previous 15 s, tick 5): {_fmt(before)}")
    print(f"  ratio previous/now (medians): {statistics.median(before) / statistics.median(now):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
