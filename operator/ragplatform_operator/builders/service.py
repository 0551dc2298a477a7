"""The Service of one gRPC tier.

Backends get headless Services (`clusterIP: None`): their gRPC clients resolve every pod address
with `dns:///` and balance per call with `round_robin`, which a long-lived HTTP/2 connection
through a ClusterIP would defeat. The gateway gets a normal Service, since its clients are
outside the platform.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.env import GRPC_PORT, METRICS_PORT
from ragplatform_operator.builders.metadata import Manifest, Owner, object_meta, selector_labels
from ragplatform_operator.spec import PlatformSpec, TierName


def _ports() -> list[dict[str, Any]]:
    return [
        {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
        {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
    ]


def build_tier_service(owner: Owner, spec: PlatformSpec, tier: TierName) -> Manifest:
    """The Service `<platform>-<tier>`: headless for backends, of `gateway.service.type` for the gateway."""
    metadata = object_meta(owner, tier)
    service_spec: dict[str, Any] = {"selector": selector_labels(owner, tier), "ports": _ports()}
    if tier == "gateway":
        service_spec["type"] = spec.gateway.service.type
        if spec.gateway.service.annotations:
            metadata["annotations"] = dict(spec.gateway.service.annotations)
    else:
        # DNS then lists ready pods only (publishNotReadyAddresses stays at its default, false).
        service_spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service_spec}
