"""PodDisruptionBudget of a multi-replica component.

`maxUnavailable: 1` lets node drains proceed one pod at a time instead of taking a whole tier
down; a single-replica component gets none (a budget could only block the drain).
"""

from __future__ import annotations

from ragplatform_operator.builders.metadata import Manifest, Owner, object_meta, selector_labels


def build_pdb(owner: Owner, component: str, name: str | None = None) -> Manifest:
    """The PDB of `component`'s pods (named `<platform>-<component>` unless `name` is given)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(owner, component, name),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(owner, component)},
            # Pods that never became ready may always be evicted: they serve nothing.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
