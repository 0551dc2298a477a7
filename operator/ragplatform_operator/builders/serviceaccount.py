"""ServiceAccount of one component.

One ServiceAccount per component so that each can be granted (or audited) separately. None of
the services talks to the Kubernetes API, so no token is mounted.
"""

from __future__ import annotations

from ragplatform_operator.builders.metadata import Manifest, Owner, object_meta


def build_service_account(owner: Owner, component: str) -> Manifest:
    """The ServiceAccount `<platform>-<component>`, with token automounting off."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(owner, component),
        "automountServiceAccountToken": False,
    }
