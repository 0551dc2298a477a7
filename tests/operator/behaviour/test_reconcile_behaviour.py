"""kopf running the operator against the API emulator: children, edits, repair, status, Events."""

from __future__ import annotations

import asyncio

from tests.operator.behaviour.harness import Cluster, eventually, minimal_platform


async def test_create_renders_children_owned_by_the_platform(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    # The workers come last in the rendering order.
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-workers"), what="all children")
    gateway = cluster.get("apps/v1/deployments", "demo-gateway")
    assert gateway is not None
    uid = cluster.platform()["metadata"]["uid"]
    kinds = {kind for kind, _ in cluster.children()}
    assert kinds >= {"Deployment", "Service", "ServiceAccount", "ConfigMap", "StatefulSet", "NetworkPolicy"}
    for (kind, name), child in cluster.children().items():
        refs = child["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [("RagPlatform", uid, True)], (kind, name)
    assert gateway["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve", "gateway"]
    assert cluster.get("apps/v1/statefulsets", "demo-qdrant") is not None
    await eventually(
        lambda: any(
            e.get("reason") == "Created" and e["message"] == "Created Deployment demo-gateway" for e in cluster.events()
        ),
        what="a Created event per child",
    )


async def test_status_reports_components_until_their_replicas_are_ready(cluster: Cluster, redis_url: str) -> None:
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    await cluster.create_platform(minimal_platform())
    ready = await eventually(lambda: cluster.condition("Ready"), what="Ready condition")
    assert ready["status"] == "False"
    gateway = await eventually(lambda: cluster.condition("GatewayReady"))
    assert gateway["reason"] == "ReplicasNotReady"
    assert "0/1 replicas ready" in gateway["message"]
    assert cluster.platform()["status"]["observedGeneration"] == cluster.platform()["metadata"]["generation"]
    assert cluster.platform()["status"]["tiers"]["gateway"]["ready"] == "0/1"

    # Play the Deployment and StatefulSet controllers: every workload reports its pods ready.
    for (kind, name), child in cluster.children().items():
        if kind in ("Deployment", "StatefulSet"):
            replicas = child["spec"].get("replicas", 1)
            resource = "apps/v1/deployments" if kind == "Deployment" else "apps/v1/statefulsets"
            await cluster.patch(resource, name, {"status": {"readyReplicas": replicas, "updatedReplicas": replicas}})

    await eventually(lambda: (cluster.condition("Ready") or {}).get("status") == "True", what="Ready=True")
    assert (cluster.condition("Degraded") or {})["status"] == "False"
    assert (cluster.condition("WorkersAutoscaling") or {})["reason"] == "QueueDepthRead"
    assert cluster.platform()["status"]["queue"]["depth"] == 0
    for component in (
        "Gateway",
        "Ingestion",
        "Retrieval",
        "Generation",
        "Conversation",
        "Workers",
        "Pooler",
        "VectorStore",
    ):
        assert (cluster.condition(f"{component}Ready") or {})["status"] == "True", component


async def test_spec_edit_is_followed_by_the_children(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-gateway"))
    await cluster.patch_platform_spec("demo", {"gateway": {"replicas": 3}, "retrieval": {"image": "example/rag:2"}})

    def followed() -> bool:
        gateway = cluster.get("apps/v1/deployments", "demo-gateway") or {}
        retrieval = cluster.get("apps/v1/deployments", "demo-retrieval") or {}
        image = retrieval["spec"]["template"]["spec"]["containers"][0]["image"]
        return bool(gateway["spec"]["replicas"] == 3 and image == "example/rag:2")

    await eventually(followed, what="the children to follow the edit")
    # Three replicas: the gateway now gets a PodDisruptionBudget.
    await eventually(lambda: cluster.get("policy/v1/poddisruptionbudgets", "demo-gateway"), what="gateway PDB")
    await eventually(lambda: "Updated" in cluster.event_reasons(), what="Updated events")


async def test_switching_a_tier_to_cpu_autoscaling_adds_an_hpa_and_leaves_replicas_to_it(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-generation"))
    await cluster.patch_platform_spec("demo", {"generation": {"autoscaling": {"minReplicas": 2, "maxReplicas": 6}}})
    hpa = await eventually(
        lambda: cluster.get("autoscaling/v2/horizontalpodautoscalers", "demo-generation"), what="the HPA"
    )
    assert hpa["spec"]["maxReplicas"] == 6
    # The HPA scales the Deployment (played here): the operator's drift repair leaves that alone.
    await cluster.patch("apps/v1/deployments", "demo-generation", {"spec": {"replicas": 5}})
    await asyncio.sleep(2.5)  # more than two repair passes (interval 1 s)
    assert (cluster.get("apps/v1/deployments", "demo-generation") or {})["spec"]["replicas"] == 5
    assert not any(e.get("reason") == "Repaired" and "demo-generation" in e["message"] for e in cluster.events())
    # Back to a fixed count: the HPA is pruned.
    await cluster.patch_platform_spec("demo", {"generation": {"autoscaling": None, "replicas": 2}})
    await eventually(
        lambda: cluster.get("autoscaling/v2/horizontalpodautoscalers", "demo-generation") is None, what="HPA pruned"
    )
    await eventually(
        lambda: any(
            e.get("reason") == "Deleted" and "HorizontalPodAutoscaler" in e["message"] for e in cluster.events()
        ),
        what="a Deleted event",
    )


async def test_deleted_child_is_repaired_by_the_timer(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.get("v1/services", "demo-retrieval"), what="retrieval Service")
    await eventually(lambda: cluster.condition("Ready"), what="first status")
    await cluster.delete("v1/services", "demo-retrieval")
    assert cluster.get("v1/services", "demo-retrieval") is None
    await eventually(lambda: cluster.get("v1/services", "demo-retrieval"), what="the Service to be recreated")
    repaired = await eventually(
        lambda: [e for e in cluster.events() if e.get("reason") == "Repaired"], what="Repaired event"
    )
    assert "Service demo-retrieval" in repaired[0]["message"]


async def test_edited_child_is_repaired_by_the_timer(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-conversation"))
    await eventually(lambda: cluster.condition("Ready"), what="first status")
    await cluster.patch("apps/v1/deployments", "demo-conversation", {"spec": {"replicas": 7}})

    def restored() -> bool:
        return bool((cluster.get("apps/v1/deployments", "demo-conversation") or {})["spec"]["replicas"] == 1)

    await eventually(restored, what="replicas restored from the spec")
    await eventually(lambda: "Repaired" in cluster.event_reasons(), what="Repaired event")


async def test_invalid_spec_is_degraded_with_what_to_fix_and_no_children(cluster: Cluster, redis_url: str) -> None:
    # The fixed spec scales workers on queue depth: without a readable Redis the platform would
    # rightly stay Degraded (QueueUnreachable) once the autoscaler's first read fails.
    await cluster.create_secret("ragplatform-redis", {"url": redis_url})
    body = minimal_platform(workers={"autoscaling": {"minReplicas": 5, "maxReplicas": 2}})
    await cluster.create_platform(body)
    degraded = await eventually(lambda: cluster.condition("Degraded"), what="Degraded condition")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "minReplicas (5)" in degraded["message"]
    assert "spec.workers.autoscaling" in degraded["message"]
    assert (cluster.condition("Ready") or {})["status"] == "False"
    await eventually(lambda: "InvalidSpec" in cluster.event_reasons(), what="InvalidSpec event")
    assert cluster.children() == {}
    # The timer keeps the condition, and does not post the same warning again and again.
    await eventually(lambda: len(cluster.platform()["status"]["conditions"]) == 3)
    await asyncio.sleep(2.5)
    assert cluster.event_reasons().count("InvalidSpec") == 1

    # Fixing the spec recovers.
    await cluster.patch_platform_spec("demo", {"workers": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}})
    await eventually(lambda: cluster.get("apps/v1/deployments", "demo-workers"), what="children after the fix")
    await eventually(lambda: (cluster.condition("Degraded") or {}).get("status") == "False", what="not degraded")


async def test_deleting_the_platform_is_not_blocked_by_the_operator(cluster: Cluster) -> None:
    await cluster.create_platform(minimal_platform())
    finalizers = await eventually(lambda: cluster.platform()["metadata"].get("finalizers"), what="the finalizer")
    assert finalizers == ["ragplatform.io/finalizer"]
    await cluster.delete("ragplatform.io/v1alpha1/ragplatforms", "demo")
    # The operator stops its timers and releases the finalizer; garbage collection (a real
    # cluster's, via the ownerReferences) then removes the children.
    await eventually(lambda: cluster.get("ragplatform.io/v1alpha1/ragplatforms", "demo") is None, what="deletion")


async def test_a_platform_without_an_internal_token_gets_a_generated_one_kept_across_reconciles(
    cluster: Cluster,
) -> None:
    await cluster.create_platform(minimal_platform())
    gateway = await eventually(lambda: cluster.get("apps/v1/deployments", "demo-gateway"))
    secret = cluster.get("v1/secrets", "demo-internal-token")
    assert secret is not None
    token = (secret.get("stringData") or {}).get("token")
    assert token
    assert len(token) >= 40
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [cluster.platform()["metadata"]["uid"]]
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAG_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "demo-internal-token", "key": "token"}

    await cluster.patch_platform_spec("demo", {"gateway": {"replicas": 2}})
    await eventually(lambda: (cluster.get("apps/v1/deployments", "demo-gateway") or {})["spec"].get("replicas") == 2)
    assert (cluster.get("v1/secrets", "demo-internal-token") or {}).get("stringData", {}).get("token") == token


async def test_a_change_that_would_orphan_the_vectors_is_refused_even_without_the_crds_rules(
    cluster: Cluster,
) -> None:
    # The emulator evaluates no CEL (as an API server with a CRD from before the rules would not).
    await cluster.create_platform(minimal_platform())
    await eventually(lambda: cluster.platform()["status"].get("storedVectors"), what="stored vectors recorded")
    assert cluster.platform()["status"]["storedVectors"]["dimension"] == 384

    await cluster.patch_platform_spec("demo", {"embedding": {"dimension": 768}})
    degraded = await eventually(
        lambda: (c := cluster.condition("Degraded")) and c["reason"] == "InvalidSpec" and c, what="the refusal"
    )
    assert "embedding.dimension cannot change on a live platform" in degraded["message"]
    assert "set it back to 384" in degraded["message"]
    await asyncio.sleep(2.5)  # two timer passes: nothing is applied
    workers = cluster.get("apps/v1/deployments", "demo-workers") or {}
    env = {e["name"]: e.get("value") for e in workers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAG_EMBEDDING_DIMENSION"] == "384"

    await cluster.patch_platform_spec("demo", {"embedding": {"dimension": 384}})
    await eventually(lambda: (cluster.condition("Degraded") or {}).get("reason") != "InvalidSpec", what="recovered")
