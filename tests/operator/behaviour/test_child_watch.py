"""Children are watched: a child deleted or changed by another field manager is repaired within
seconds by its owner's repair loop, not by the drift timer (set to 5 minutes here), the
operator's own writes trigger nothing, and one flapping child slows only its own platform."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from ragplatform_operator.builders.internal_token import TOKEN_FINGERPRINT_ANNOTATION, TOKEN_KEY, token_fingerprint
from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.spec import TIER_NAMES
from tests.operator.behaviour.emulator import ApiServerEmulator
from tests.operator.behaviour.harness import Cluster, OperatorThread, eventually, minimal_platform
from tests.operator.behaviour.test_pod_monitor import PODMONITORS, install_prometheus_operator_crd

# The target is 2 s (bench/operator_reconcile.py measures ~0.5-0.9 s here); the tests allow the
# issue's acceptance bound of 5 s because this machine is shared. The drift timer is set to
# 5 minutes, so any repair within these bounds came from watching the children.
REPAIR_BOUND_SECONDS = 5.0


@pytest.fixture
async def watching_cluster(emulator: ApiServerEmulator) -> AsyncIterator[Cluster]:
    """The operator with a drift timer too slow to matter: every repair here comes from a watch."""
    config = OperatorConfig(
        reconcile_interval_seconds=300, autoscale_tick_seconds=300, liveness_endpoint=None, log_format="plain"
    )
    running = await OperatorThread.start(str(emulator.url), config)
    try:
        yield Cluster(emulator)
    finally:
        await running.stop()


def gateway_image(cluster: Cluster, platform: str = "demo") -> str | None:
    gateway = cluster.get("apps/v1/deployments", f"{platform}-gateway")
    return None if gateway is None else str(gateway["spec"]["template"]["spec"]["containers"][0]["image"])


def passes(cluster: Cluster) -> int:
    """Reconcile passes so far: each lists ConfigMaps once (the autoscaler lists only workloads)."""
    return cluster.emu.list_requests["configmaps"]


async def settled(cluster: Cluster, platform: str = "demo") -> None:
    """Wait until the platform's children and status exist, kopf has recorded the spec as handled
    (it runs the create handler again when its own progress patch meets a conflict), and no
    pass has run for two seconds (a slow, shared machine stretches all of these)."""
    await eventually(lambda: cluster.get("apps/v1/deployments", f"{platform}-workers"), what="all children")
    await eventually(lambda: cluster.condition("Ready", platform), what="first status")
    handled = "ragplatform.io/last-handled-configuration"
    await eventually(
        lambda: handled in (cluster.platform(platform)["metadata"].get("annotations") or {}), what="create handled"
    )
    for _ in range(15):
        before = passes(cluster)
        await asyncio.sleep(2.0)
        if passes(cluster) == before:
            return
    raise AssertionError("the operator kept reconciling for 30 s with nothing changed")


async def test_deleted_child_is_recreated_within_seconds_not_at_the_timer(watching_cluster: Cluster) -> None:
    cluster = watching_cluster
    await cluster.create_platform(minimal_platform())
    await settled(cluster)
    await cluster.delete("apps/v1/deployments", "demo-gateway")
    await cluster.delete("v1/services", "demo-retrieval")
    assert cluster.get("apps/v1/deployments", "demo-gateway") is None
    await eventually(
        lambda: cluster.get("apps/v1/deployments", "demo-gateway") and cluster.get("v1/services", "demo-retrieval"),
        timeout=REPAIR_BOUND_SECONDS,
        what="both children recreated",
    )
    repaired = await eventually(
        lambda: [e["message"] for e in cluster.events() if e.get("reason") == "Repaired"], what="Repaired events"
    )
    assert any("Deployment demo-gateway" in message for message in repaired)


async def test_image_changed_by_another_manager_is_reverted_within_seconds(watching_cluster: Cluster) -> None:
    cluster = watching_cluster
    await cluster.create_platform(minimal_platform())
    await settled(cluster)
    rendered = gateway_image(cluster)
    live = cluster.get("apps/v1/deployments", "demo-gateway")
    assert live is not None
    # `kubectl set image` writes the whole containers list as its own field manager.
    containers = [{**c, "image": "attacker/rag:evil"} for c in live["spec"]["template"]["spec"]["containers"]]
    await cluster.patch(
        "apps/v1/deployments",
        "demo-gateway",
        {"spec": {"template": {"spec": {"containers": containers}}}},
        field_manager="kubectl-set",
    )
    assert gateway_image(cluster) == "attacker/rag:evil"
    await eventually(lambda: gateway_image(cluster) == rendered, timeout=REPAIR_BOUND_SECONDS, what="image reverted")


async def test_the_operators_own_writes_trigger_no_pass(
    watching_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = watching_cluster
    caplog.set_level(logging.INFO, logger="kopf.objects")

    def triggered_passes() -> list[str]:
        """The passes the child watchers started (the repair loop logs each one)."""
        return [r.getMessage() for r in caplog.records if "reconciling after events on its objects" in r.getMessage()]

    await cluster.create_platform(minimal_platform())
    await settled(cluster)
    quiet = passes(cluster)
    await asyncio.sleep(1.5)
    assert passes(cluster) == quiet, "the operator reconciled with nothing changed: a loop on its own writes"
    assert triggered_passes() == [], "creating 30-odd children started repair passes"

    # A spec change rewrites children (by the update handler); their events start no repair.
    await cluster.patch_platform_spec("demo", {"gateway": {"replicas": 3}, "retrieval": {"image": "example/rag:2"}})
    await eventually(lambda: "Updated" in cluster.event_reasons(), what="children updated")
    await settled(cluster)
    assert triggered_passes() == []

    # A repair is one pass; writing the child back starts no further pass.
    await cluster.delete("v1/configmaps", "demo-pgbouncer")
    await eventually(lambda: cluster.get("v1/configmaps", "demo-pgbouncer"), timeout=REPAIR_BOUND_SECONDS)
    await settled(cluster)
    assert len(triggered_passes()) == 1, triggered_passes()
    assert "ConfigMap demo-pgbouncer was deleted" in triggered_passes()[0]


async def test_a_flapping_child_slows_only_its_own_platforms_repairs(watching_cluster: Cluster) -> None:
    cluster = watching_cluster
    await cluster.create_platform(minimal_platform("flappy"))
    await cluster.create_platform(minimal_platform("steady"))
    await settled(cluster, "flappy")
    await settled(cluster, "steady")

    edits = 0

    async def fight_over_the_image(seconds: float) -> None:
        # Another controller that keeps setting its own image on flappy's gateway.
        nonlocal edits
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            live = cluster.get("apps/v1/deployments", "flappy-gateway")
            assert live is not None
            containers = [{**c, "image": f"other/rag:{edits}"} for c in live["spec"]["template"]["spec"]["containers"]]
            await cluster.patch(
                "apps/v1/deployments",
                "flappy-gateway",
                {"spec": {"template": {"spec": {"containers": containers}}}},
                field_manager="other-controller",
            )
            edits += 1
            await asyncio.sleep(0.1)

    await fight_over_the_image(2.0)
    # Meanwhile the other platform's repairs are as fast as ever.
    fighter = asyncio.create_task(fight_over_the_image(5.0))
    try:
        await cluster.delete("apps/v1/deployments", "steady-gateway")
        await eventually(
            lambda: cluster.get("apps/v1/deployments", "steady-gateway"),
            timeout=REPAIR_BOUND_SECONDS,
            what="the steady platform's child recreated",
        )
    finally:
        await fighter
    flappy_repairs = [
        e for e in cluster.events() if e.get("reason") == "Repaired" and "flappy-gateway" in e.get("message", "")
    ]
    # 7 s of edits every 0.1 s: without a rate limit each pass would fight one (a pass takes a
    # few hundred ms here: 10 or more repairs); 3 at once, then waits of 1, 2, 4 s leave about 6.
    print(f"{edits} edits by another controller, {len(flappy_repairs)} repairs")
    assert 1 <= len(flappy_repairs) <= 8, (edits, len(flappy_repairs))


def tier_fingerprints(cluster: Cluster) -> set[str | None]:
    """The internal-token fingerprint in every tier's pod template."""
    return {
        (cluster.get("apps/v1/deployments", f"demo-{tier}") or {})["spec"]["template"]["metadata"]["annotations"].get(
            TOKEN_FINGERPRINT_ANNOTATION
        )
        for tier in TIER_NAMES
    }


def generated_token(cluster: Cluster) -> str | None:
    secret = cluster.get("v1/secrets", "demo-internal-token")
    return None if secret is None else str(secret["stringData"][TOKEN_KEY])


async def test_a_deleted_internal_token_is_replaced_within_seconds_and_every_tier_rolls_onto_it(
    watching_cluster: Cluster,
) -> None:
    cluster = watching_cluster
    await cluster.create_platform(minimal_platform())
    await settled(cluster)
    first = generated_token(cluster)
    assert first is not None
    assert tier_fingerprints(cluster) == {token_fingerprint(first)}

    await cluster.delete("v1/secrets", "demo-internal-token")
    second = await eventually(lambda: generated_token(cluster), timeout=REPAIR_BOUND_SECONDS, what="a new token")
    # The old value is gone with the Secret: a new one, and every tier's pods roll onto it.
    assert second != first
    await eventually(
        lambda: tier_fingerprints(cluster) == {token_fingerprint(second)},
        timeout=REPAIR_BOUND_SECONDS,
        what="every tier on the new token",
    )
    # Writing the Secret and the tiers back starts no further pass.
    await settled(cluster)
    assert generated_token(cluster) == second


async def test_a_deleted_pod_monitor_comes_back_within_seconds_when_its_crd_exists(
    emulator: ApiServerEmulator,
) -> None:
    install_prometheus_operator_crd(emulator)  # before kopf starts: it discovers the kind then
    config = OperatorConfig(
        reconcile_interval_seconds=300, autoscale_tick_seconds=300, liveness_endpoint=None, log_format="plain"
    )
    running = await OperatorThread.start(str(emulator.url), config)
    try:
        cluster = Cluster(emulator)
        await cluster.create_platform(minimal_platform())
        await settled(cluster)
        assert cluster.get(PODMONITORS, "demo-metrics") is not None
        await cluster.delete(PODMONITORS, "demo-metrics")
        await eventually(
            lambda: cluster.get(PODMONITORS, "demo-metrics"), timeout=REPAIR_BOUND_SECONDS, what="PodMonitor back"
        )
    finally:
        await running.stop()


async def test_a_clean_stop_logs_no_warning_and_no_traceback(
    emulator: ApiServerEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Timers every second, so that passes are in flight when the operator stops.
    config = OperatorConfig(
        reconcile_interval_seconds=1, autoscale_tick_seconds=1, liveness_endpoint=None, log_format="plain"
    )
    caplog.set_level(logging.DEBUG)
    running = await OperatorThread.start(str(emulator.url), config)
    cluster = Cluster(emulator)
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.condition("Ready"), what="first status")
    await cluster.delete("apps/v1/deployments", "demo-gateway")  # events in flight on the watch streams
    await asyncio.sleep(0.5)
    stopping = len(caplog.records)
    await running.stop()
    noisy = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in caplog.records[stopping:]
        if r.levelno >= logging.WARNING or r.exc_info
    ]
    assert noisy == [], noisy
