"""Pure builders: a RagPlatform's spec in, every child manifest out.

`build_children` is the one entry point the reconciler calls. It reads nothing from the cluster
and has no side effects, so the same inputs always give the same manifests; the reconciler
applies them with server-side apply and deletes children that are no longer in the list (for
example an HPA after a tier switched to fixed replicas, or the Qdrant objects after a switch to
an external vector store).
"""

from __future__ import annotations

from ragplatform_operator.builders.deployment import build_tier_deployment
from ragplatform_operator.builders.hpa import build_hpa
from ragplatform_operator.builders.metadata import Manifest, Owner
from ragplatform_operator.builders.networkpolicy import (
    build_pgbouncer_network_policy,
    build_qdrant_network_policy,
    build_tier_network_policy,
)
from ragplatform_operator.builders.pdb import build_pdb
from ragplatform_operator.builders.pgbouncer import (
    build_pgbouncer_config_map,
    build_pgbouncer_deployment,
    build_pgbouncer_service,
)
from ragplatform_operator.builders.pod_monitor import build_pod_monitor
from ragplatform_operator.builders.qdrant import (
    build_qdrant_client_service,
    build_qdrant_headless_service,
    build_qdrant_snapshot_cronjob,
    build_qdrant_statefulset,
)
from ragplatform_operator.builders.service import build_tier_service
from ragplatform_operator.builders.serviceaccount import build_service_account
from ragplatform_operator.spec import SERVICE_TIER_NAMES, PlatformSpec, ServiceTierName, check_platform_name

__all__ = ["Manifest", "Owner", "build_children", "worker_replicas_in_force"]


def worker_replicas_in_force(spec: PlatformSpec, worker_replicas: int | None) -> int:
    """The worker count the Deployment gets.

    A fixed `workers.replicas` always wins. Under queue autoscaling it is `worker_replicas` (the
    autoscaler's latest decision) clamped to the current bounds, so that a decision made under
    older bounds never escapes new ones; None (no decision yet) means `minReplicas`.
    """
    scaling = spec.workers.queue_autoscaling
    if scaling is None:
        return spec.workers.replicas or 0
    wanted = scaling.min_replicas if worker_replicas is None else worker_replicas
    return max(scaling.min_replicas, min(scaling.max_replicas, wanted))


def _workers_children(
    owner: Owner, spec: PlatformSpec, worker_replicas: int | None, token_fingerprint: str | None
) -> list[Manifest]:
    # Workers serve no gRPC clients (only probes and metrics), so no Service; the operator
    # scales them on queue depth, so no HPA.
    children = [
        build_service_account(owner, "workers"),
        build_tier_deployment(
            owner, spec, "workers", worker_replicas_in_force(spec, worker_replicas), token_fingerprint
        ),
    ]
    if spec.workers.max_replicas > 1:
        children.append(build_pdb(owner, "workers"))
    if spec.network_policy.enabled:
        children.append(build_tier_network_policy(owner, "workers"))
    return children


def _service_tier_children(
    owner: Owner, spec: PlatformSpec, tier: ServiceTierName, token_fingerprint: str | None
) -> list[Manifest]:
    tier_spec = spec.service_tier(tier)
    children = [
        build_service_account(owner, tier),
        build_tier_deployment(owner, spec, tier, tier_spec.fixed_replicas, token_fingerprint),
        build_tier_service(owner, spec, tier),
    ]
    if tier_spec.autoscaling is not None:
        children.append(build_hpa(owner, tier, tier_spec.autoscaling))
    if tier_spec.max_replicas > 1:
        children.append(build_pdb(owner, tier))
    if spec.network_policy.enabled:
        children.append(build_tier_network_policy(owner, tier))
    return children


def _store_children(owner: Owner, spec: PlatformSpec) -> list[Manifest]:
    children: list[Manifest] = [
        build_service_account(owner, "pgbouncer"),
        build_pgbouncer_config_map(owner, spec),
        build_pgbouncer_deployment(owner, spec),
        build_pgbouncer_service(owner),
    ]
    if spec.pgbouncer.replicas > 1:
        children.append(build_pdb(owner, "pgbouncer"))
    if spec.network_policy.enabled:
        children.append(build_pgbouncer_network_policy(owner))
    managed = spec.vector_store.managed
    if managed is not None:
        children += [
            build_service_account(owner, "qdrant"),
            build_qdrant_headless_service(owner),
            build_qdrant_client_service(owner),
            build_qdrant_statefulset(owner, spec, managed),
        ]
        if managed.replicas > 1:
            children.append(build_pdb(owner, "qdrant"))
        if spec.network_policy.enabled:
            children.append(build_qdrant_network_policy(owner))
        if managed.snapshot_schedule:
            children.append(build_qdrant_snapshot_cronjob(owner, spec, managed, managed.snapshot_schedule))
    return children


def build_children(
    platform_name: str,
    namespace: str,
    uid: str,
    spec: PlatformSpec,
    worker_replicas: int | None,
    *,
    pod_monitor_crd: bool = False,
    token_fingerprint: str | None = None,
) -> list[Manifest]:
    """Every child manifest of the RagPlatform `namespace/platform_name` (uid `uid`).

    `pod_monitor_crd` says whether the cluster has the Prometheus Operator's PodMonitor CRD: only
    then (and with `spec.observability.serviceMonitor.enabled`) is a PodMonitor rendered.
    `token_fingerprint` (of the generated internal token) goes into every tier's pod template.

    Each carries the `app.kubernetes.io/*` labels and a controller ownerReference to the
    RagPlatform. Stores (PgBouncer, Qdrant) come before the tiers that use them. The worker
    Deployment's replicas follow `worker_replicas_in_force`. Raises `SpecError` for a platform
    name that cannot prefix child names.
    """
    check_platform_name(platform_name)
    owner = Owner(name=platform_name, namespace=namespace, uid=uid)
    children = _store_children(owner, spec)
    for tier in SERVICE_TIER_NAMES:
        children += _service_tier_children(owner, spec, tier, token_fingerprint)
    children += _workers_children(owner, spec, worker_replicas, token_fingerprint)
    if pod_monitor_crd and spec.observability.service_monitor.enabled:
        children.append(build_pod_monitor(owner, spec))
    return children
