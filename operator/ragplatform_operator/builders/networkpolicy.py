"""NetworkPolicies: only the gateway reaches the backends, only the platform reaches its stores.

One ingress policy per component (a pod selected by any ingress policy accepts only what some
policy allows):

* gateway: gRPC from anywhere (it is the public entry point);
* ingestion, generation, conversation: gRPC from the gateway only;
* retrieval: gRPC from the gateway, and from ingestion and the workers, which call it to delete
  and index a document's chunks;
* workers: no gRPC callers at all;
* PgBouncer and the managed Qdrant: only from this platform's pods (Qdrant's peer port only from
  other Qdrant nodes).

Metrics ports stay open to every source so that a Prometheus in another namespace can scrape
them. Probes come from the kubelet, which NetworkPolicies do not filter. Egress is not restricted:
the platform reaches PostgreSQL, Redis, S3 and the model endpoints wherever they are.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.env import GRPC_PORT, METRICS_PORT, PGBOUNCER_PORT, QDRANT_PORTS
from ragplatform_operator.builders.metadata import (
    APP_NAME,
    INSTANCE_LABEL,
    Manifest,
    Owner,
    object_meta,
    selector_labels,
)
from ragplatform_operator.spec import TierName

# Who may call each tier's gRPC port (besides nobody).
_GRPC_CALLERS: dict[TierName, tuple[str, ...] | None] = {
    "gateway": None,  # None: anyone
    "ingestion": ("gateway",),
    "retrieval": ("gateway", "ingestion", "workers"),
    "generation": ("gateway",),
    "conversation": ("gateway",),
    "workers": (),
}


def _tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _from_components(owner: Owner, components: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"podSelector": {"matchLabels": selector_labels(owner, component)}} for component in components]


def _from_platform(owner: Owner) -> list[dict[str, Any]]:
    return [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP_NAME, INSTANCE_LABEL: owner.name}}}]


def _policy(owner: Owner, component: str, ingress: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(owner, component),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner, component)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def build_tier_network_policy(owner: Owner, tier: TierName) -> Manifest:
    """The ingress policy of a service tier (see the module docstring for who may call whom)."""
    ingress: list[dict[str, Any]] = [{"ports": [_tcp(METRICS_PORT)]}]
    callers = _GRPC_CALLERS[tier]
    if callers is None:
        ingress.insert(0, {"ports": [_tcp(GRPC_PORT)]})
    elif callers:
        ingress.insert(0, {"from": _from_components(owner, callers), "ports": [_tcp(GRPC_PORT)]})
    return _policy(owner, tier, ingress)


def build_pgbouncer_network_policy(owner: Owner) -> Manifest:
    """Only this platform's pods reach PgBouncer."""
    return _policy(owner, "pgbouncer", [{"from": _from_platform(owner), "ports": [_tcp(PGBOUNCER_PORT)]}])


def build_qdrant_network_policy(owner: Owner) -> Manifest:
    """Only this platform's pods reach Qdrant's APIs; only Qdrant nodes reach its peer port."""
    return _policy(
        owner,
        "qdrant",
        [
            {
                "from": _from_platform(owner),
                "ports": [_tcp(QDRANT_PORTS["http"]), _tcp(QDRANT_PORTS["grpc"])],
            },
            {"from": _from_components(owner, ("qdrant",)), "ports": [_tcp(QDRANT_PORTS["p2p"])]},
        ],
    )
