"""HorizontalPodAutoscaler (autoscaling/v2) of a CPU-autoscaled tier.

Only tiers with `autoscaling` get one; the workers never do: the operator scales them on queue
depth itself, and an HPA on the same Deployment would fight it.
"""

from __future__ import annotations

from ragplatform_operator.builders.metadata import Manifest, Owner, object_meta
from ragplatform_operator.spec import CpuAutoscaling


def build_hpa(owner: Owner, tier: str, autoscaling: CpuAutoscaling) -> Manifest:
    """The HPA `<platform>-<tier>` targeting the tier's Deployment."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(owner, tier),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.child_name(tier)},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }
