"""Bringing a RagPlatform's children in line with the rendered manifests.

Children are applied with server-side apply under one field manager (`ragplatform-operator`,
force=True: the operator's own fields always win), so a field the operator does not render —
an HPA-managed tier's `replicas` — stays with whoever manages it. Children the operator rendered
before but renders no longer (an HPA after a switch to fixed replicas, Qdrant after a switch to
an external store) are deleted. What was done is returned as `ChildChange`s, from which the
reconciler emits Events.

Drift is judged by `contains(live, desired)`: every field the operator renders must hold the
rendered value; fields the API server or other controllers add are ignored. A child that still
differs right after being applied is only normalised differently by the server (e.g. a CPU
quantity "0.5" stored as "500m"), so it is not reported as repaired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ragplatform_operator.kube_api import CHILD_KINDS, KubeApi, ResourceKind, resource_of

INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ragplatform-operator"
ChildKey = tuple[str, str]  # (kind, name)


class ChangeAction(StrEnum):
    """What happened to a child; used as the Event reason."""

    CREATED = "Created"
    UPDATED = "Updated"
    REPAIRED = "Repaired"
    DELETED = "Deleted"


@dataclass(frozen=True)
class ChildChange:
    """One child that was created, updated (spec change), repaired (drift) or deleted."""

    action: ChangeAction
    kind: str
    name: str
    detail: str = ""

    @property
    def message(self) -> str:
        text = f"{self.action.value} {self.kind} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class ApplyResult:
    """The changes made and the children's latest known state, by (kind, name)."""

    changes: list[ChildChange]
    live: dict[ChildKey, dict[str, Any]]


def key_of(manifest: Mapping[str, Any]) -> ChildKey:
    return (str(manifest["kind"]), str(manifest["metadata"]["name"]))


def contains(live: Any, desired: Any) -> bool:
    """True when every field set in `desired` holds the same value in `live` (recursively)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def child_selector(platform: str) -> dict[str, str]:
    """The labels every child of the RagPlatform `platform` carries (a label selector)."""
    return {INSTANCE_LABEL: platform, MANAGED_BY_LABEL: MANAGED_BY}


def _owned_by(obj: Mapping[str, Any], platform: str, uid: str) -> bool:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(INSTANCE_LABEL) != platform or labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False  # the selector is also checked here: not every API (or emulator) filters
    return any(ref.get("uid") == uid and ref.get("controller") for ref in meta.get("ownerReferences") or [])


async def list_children(
    api: KubeApi,
    namespace: str,
    platform: str,
    uid: str,
    *,
    kinds: Iterable[str] | None = None,
    optional: Iterable[ResourceKind] = (),
) -> dict[ChildKey, dict[str, Any]]:
    """Existing children of the RagPlatform (`uid`): of every kind the operator renders, or `kinds`,
    plus the `optional` kinds (add-ons whose CRD the cluster has)."""
    selector = child_selector(platform)
    wanted = [r for r in CHILD_KINDS if kinds is None or r.kind in set(kinds)] + list(optional)
    listings = await asyncio.gather(*(api.list(kind, namespace, selector) for kind in wanted))
    return {key_of(obj): obj for items in listings for obj in items if _owned_by(obj, platform, uid)}


async def _apply_one(
    api: KubeApi, manifest: dict[str, Any], live: dict[str, Any] | None, spec_changed: bool
) -> tuple[ChildChange | None, dict[str, Any]]:
    kind, name = key_of(manifest)
    applied = await api.apply(manifest) or manifest
    if live is None:
        action = ChangeAction.CREATED if spec_changed else ChangeAction.REPAIRED
        return ChildChange(action, kind, name, "" if spec_changed else "it had been deleted; recreated"), applied
    if contains(live, manifest) or not contains(applied, manifest):
        return None, applied  # in sync before, or only normalised differently by the server
    if spec_changed:
        return ChildChange(ChangeAction.UPDATED, kind, name), applied
    return ChildChange(ChangeAction.REPAIRED, kind, name, "it had been changed; restored the rendered fields"), applied


async def apply_children(
    api: KubeApi,
    desired: Iterable[dict[str, Any]],
    existing: Mapping[ChildKey, dict[str, Any]],
    *,
    apply_all: bool,
    spec_changed: bool,
) -> ApplyResult:
    """Apply the `desired` children and delete the `existing` ones no longer desired.

    `apply_all` applies every child (after a spec change or an operator restart, when the
    rendering itself may differ); otherwise only children that are missing or have drifted.
    `spec_changed` says whether differences come from a new spec (Created/Updated) or from
    someone else's hands (Repaired).
    """
    desired = list(desired)
    live: dict[ChildKey, dict[str, Any]] = dict(existing)
    todo = [m for m in desired if apply_all or key_of(m) not in live or not contains(live[key_of(m)], m)]
    results = await asyncio.gather(*(_apply_one(api, m, live.get(key_of(m)), spec_changed) for m in todo))
    changes = [change for change, _ in results if change is not None]
    for manifest, (_, applied) in zip(todo, results, strict=True):
        live[key_of(manifest)] = applied

    wanted = {key_of(m) for m in desired}
    for key in [k for k in existing if k not in wanted]:
        obj = existing[key]
        resource = resource_of(obj["apiVersion"], obj["kind"])
        await api.delete(resource, obj["metadata"]["namespace"], key[1])
        changes.append(ChildChange(ChangeAction.DELETED, key[0], key[1], "no longer rendered from the spec"))
        del live[key]
    return ApplyResult(changes=changes, live=live)
