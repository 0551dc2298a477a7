"""Workers scaled on the depth of a real Redis stream, by kopf running the operator's timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ragplatform_operator.config import OperatorConfig
from tests.operator.behaviour.harness import Cluster, OperatorThread, eventually, minimal_platform

STREAM = "ragplatform:queue:ingestion"
GROUP = "workers"


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The ingestion stream with the workers' consumer group, as the services create it."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    yield client
    await client.aclose()


async def enqueue(client: aioredis.Redis, jobs: int) -> None:
    """Add `jobs` entries at once (one transaction), so the operator never sees a partial batch."""
    async with client.pipeline(transaction=True) as pipe:
        for i in range(jobs):
            pipe.xadd(STREAM, {"job": str(i)})
        await pipe.execute()


async def drain(client: aioredis.Redis) -> None:
    """Play a worker: read every job and acknowledge it."""
    answer: Any = await client.xreadgroup(GROUP, "worker-1", {STREAM: ">"}, count=10_000)
    ids = [entry_id for _, entries in answer for entry_id, _ in entries]
    if ids:
        await client.xack(STREAM, GROUP, *ids)


def autoscaled(**autoscaling: Any) -> dict[str, Any]:
    bounds = {
        "minReplicas": 1,
        "maxReplicas": 5,
        "targetQueueDepthPerReplica": 5,
        "scaleDownStabilizationSeconds": 3,
        "pollingIntervalSeconds": 1,
        **autoscaling,
    }
    return minimal_platform(workers={"autoscaling": bounds})


def worker_replicas(cluster: Cluster) -> int | None:
    workers = cluster.get("apps/v1/deployments", "demo-workers")
    return None if workers is None else int(workers["spec"]["replicas"])


def last_decision(cluster: Cluster) -> dict[str, Any]:
    decision: dict[str, Any] = (cluster.platform().get("status") or {}).get("autoscaler", {}).get("lastDecision", {})
    return decision


async def test_workers_scale_up_at_once_then_down_after_the_window(
    cluster: Cluster, queue: aioredis.Redis, redis_url: str
) -> None:
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    await cluster.create_platform(autoscaled())
    await eventually(lambda: worker_replicas(cluster) == 1, what="workers at minReplicas")

    await enqueue(queue, 18)  # ceil(18 / 5) = 4
    await eventually(lambda: worker_replicas(cluster) == 4, what="scale up to 4")
    await eventually(lambda: cluster.platform()["status"]["queue"].get("desiredReplicas") == 4, what="status")
    status = cluster.platform()["status"]
    assert status["queue"]["depth"] == 18
    assert status["queue"]["desiredReplicas"] == 4
    assert "scaled 1 -> 4" in status["queue"]["lastScaleReason"]
    assert status["queue"]["lastScaleTime"]
    assert (cluster.condition("WorkersAutoscaling") or {})["reason"] == "QueueDepthRead"
    await eventually(
        lambda: any(e.get("reason") == "ScaledUp" and "1 -> 4" in e["message"] for e in cluster.events()),
        what="a ScaledUp event",
    )

    # The queue empties: the operator waits for the window before scaling down.
    await drain(queue)
    await eventually(lambda: last_decision(cluster).get("reason") == "ScaleDownStabilizing", what="stabilising")
    assert worker_replicas(cluster) == 4, "no scale-down inside the window"
    await eventually(lambda: worker_replicas(cluster) == 1, what="scale down after the window")
    await eventually(lambda: "ScaledDown" in cluster.event_reasons(), what="a ScaledDown event")
    await eventually(lambda: cluster.platform()["status"]["queue"]["depth"] == 0, what="depth 0 in status")


async def test_sre_bounds_patch_applies_at_once_and_a_restart_keeps_the_count(
    cluster: Cluster, queue: aioredis.Redis, redis_url: str, emulator: Any, operator_config: OperatorConfig
) -> None:
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    await cluster.create_platform(autoscaled(scaleDownStabilizationSeconds=600))
    await enqueue(queue, 25)
    await eventually(lambda: worker_replicas(cluster) == 5, what="scale up to maxReplicas")

    # An SRE lowers the ceiling on the RagPlatform: the operator obeys it without waiting.
    await cluster.patch_platform_spec("demo", {"workers": {"autoscaling": {"maxReplicas": 3}}})
    await eventually(lambda: worker_replicas(cluster) == 3, what="clamped to the new maxReplicas")

    # A second operator process (the first one keeps running here, as during a rolling update)
    # starts from the status, not from minReplicas: the worker count never drops.
    second = await OperatorThread.start(str(emulator.url), operator_config)
    try:
        await asyncio.sleep(2)
        assert worker_replicas(cluster) == 3
    finally:
        await second.stop()


async def test_scale_from_zero_only_above_the_activation_threshold(
    cluster: Cluster, queue: aioredis.Redis, redis_url: str
) -> None:
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    await cluster.create_platform(autoscaled(minReplicas=0, activationQueueDepth=3))
    await eventually(lambda: worker_replicas(cluster) == 0, what="zero workers")
    await enqueue(queue, 3)
    await eventually(lambda: last_decision(cluster).get("reason") == "BelowActivation", what="below activation")
    assert worker_replicas(cluster) == 0
    await enqueue(queue, 1)
    await eventually(lambda: worker_replicas(cluster) == 1, what="woken up above the threshold")
    await eventually(lambda: "ScaledFromZero" in cluster.event_reasons(), what="a ScaledFromZero event")


async def test_redis_outage_is_a_condition_not_a_crash(cluster: Cluster, queue: aioredis.Redis, redis_url: str) -> None:
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    await cluster.create_platform(autoscaled())
    await enqueue(queue, 10)
    await eventually(lambda: worker_replicas(cluster) == 2, what="scale up to 2")

    await queue.shutdown(nosave=True)  # type: ignore[no-untyped-call]
    unreachable = await eventually(
        lambda: (c := cluster.condition("WorkersAutoscaling")) and c["reason"] == "QueueUnreachable" and c,
        what="QueueUnreachable",
    )
    assert "cannot read queue ragplatform:queue:ingestion" in unreachable["message"]
    assert "Check that Redis is up" in unreachable["message"]
    degraded = cluster.condition("Degraded") or {}
    assert (degraded["status"], degraded["reason"]) == ("True", "QueueUnreachable")
    assert worker_replicas(cluster) == 2, "the worker count is kept while the queue cannot be read"
    await eventually(lambda: "QueueUnreachable" in cluster.event_reasons(), what="a Warning event")
    await asyncio.sleep(2)
    assert cluster.event_reasons().count("QueueUnreachable") == 1, "one warning per outage, not one per poll"
    warnings = [e["reason"] for e in cluster.events() if e.get("type") == "Warning"]
    assert warnings == ["QueueUnreachable"], "no duplicate Events from the operator's log lines"


async def test_with_the_default_settings_a_backlog_reaches_the_workers_within_ten_seconds(
    emulator: Any, queue: aioredis.Redis, redis_url: str
) -> None:
    # The operator's and the RagPlatform's defaults only (the other tests shorten them).
    running = await OperatorThread.start(str(emulator.url), OperatorConfig(liveness_endpoint=None, log_format="plain"))
    cluster = Cluster(emulator)
    try:
        await cluster.create_secret("ragplatform-redis", {"url": redis_url})
        await cluster.create_platform(minimal_platform())
        await eventually(lambda: worker_replicas(cluster) == 1, what="workers at the default minReplicas")
        await eventually(lambda: cluster.platform()["status"].get("queue", {}).get("depth") == 0, what="first poll")
        await enqueue(queue, 60)  # ceil(60 / 10) = 6 with the default target per replica
        await eventually(lambda: worker_replicas(cluster) == 6, timeout=10.0, what="scale up within 10 s")
    finally:
        await running.stop()
