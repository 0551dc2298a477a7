"""Which events on the operator's children call for a reconcile of their owner (pure logic).

The operator watches every kind it renders (as controller-runtime's `Owns()` does) so that a
child deleted or edited by someone else is repaired within seconds instead of at the next timer
pass. Two things keep that from looping on the operator's own writes:

* `OwnWrites` remembers the `resourceVersion` the API server gave each object the operator
  applied; the watch event of that very write carries the same version and is ignored;
* `changed_by_someone_else` reads `metadata.managedFields`: an event matters only when a
  manager other than the operator wrote the object's main resource (not `status`) at or after
  the operator's last apply. Status updates by the Deployment controller are not repairs.

Whatever slips through is harmless: a reconcile pass applies only children that are missing or
differ from their rendering, so a pass over children in sync writes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ragplatform_operator import API_GROUP, KIND

# Enough for every child of a few hundred platforms; the oldest entries are forgotten first
# (forgetting one costs at most one no-op reconcile pass).
_OWN_WRITES_REMEMBERED = 20_000
ObjectRef = tuple[str, str, str]  # (kind, namespace, name)
_DELETED = "<deleted by the operator>"


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))


def owner_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the RagPlatform that controls `obj`, or None when no RagPlatform does."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        group = str(ref.get("apiVersion", "")).split("/", 1)[0]
        if ref.get("controller") and ref.get("kind") == KIND and group == API_GROUP and ref.get("uid"):
            return str(ref["uid"])
    return None


class OwnWrites:
    """The resourceVersion of the operator's latest write of each object, bounded in size."""

    def __init__(self, capacity: int = _OWN_WRITES_REMEMBERED) -> None:
        self._versions: OrderedDict[ObjectRef, str] = OrderedDict()
        self._capacity = capacity

    def _remember(self, ref: ObjectRef, version: str) -> None:
        self._versions[ref] = version
        self._versions.move_to_end(ref)
        while len(self._versions) > self._capacity:
            self._versions.popitem(last=False)

    def record(self, written: Mapping[str, Any] | None) -> None:
        """Remember an object as the API server answered the operator's write of it."""
        version = ((written or {}).get("metadata") or {}).get("resourceVersion")
        if written and version:
            self._remember(ref_of(written), str(version))

    def record_deletion(self, ref: ObjectRef) -> None:
        """Remember that the operator deleted (pruned) the object `ref`."""
        self._remember(ref, _DELETED)

    def is_own(self, obj: Mapping[str, Any]) -> bool:
        """True when `obj` is exactly the version the operator wrote last."""
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return version is not None and self._versions.get(ref_of(obj)) == str(version)

    def deleted_by_operator(self, obj: Mapping[str, Any]) -> bool:
        """True when the operator itself deleted `obj` last (a prune, not a repair)."""
        return self._versions.get(ref_of(obj)) == _DELETED


def changed_by_someone_else(obj: Mapping[str, Any], field_manager: str) -> bool:
    """True unless `managedFields` show that nobody but `field_manager` wrote the object since its
    last apply (status-subresource writes do not count). Without managedFields: True."""
    entries = [e for e in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(e, Mapping)]
    if not entries:
        return True
    own_times = [str(e.get("time") or "") for e in entries if e.get("manager") == field_manager]
    if not own_times:
        return True
    last_own = max(own_times)
    # RFC 3339 times in UTC with whole seconds compare correctly as strings. Equal times are
    # counted as "after": a same-second edit must not be missed (the pass is then a no-op at worst).
    return any(
        e.get("manager") != field_manager and e.get("subresource") != "status" and str(e.get("time") or "") >= last_own
        for e in entries
    )


def reconcile_reason(
    event_type: str | None, obj: Mapping[str, Any], own_writes: OwnWrites, field_manager: str
) -> str | None:
    """Why this watch event calls for a reconcile of the child's owner, or None when it does not.

    `event_type` is the watch event's type (None for the initial listing, which the owner's own
    resume handler covers).
    """
    kind, _, name = ref_of(obj)
    if event_type == "DELETED":
        return None if own_writes.deleted_by_operator(obj) else f"{kind} {name} was deleted"
    if event_type not in ("ADDED", "MODIFIED") or own_writes.is_own(obj):
        return None
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return None  # being deleted: its DELETED event follows
    if not changed_by_someone_else(obj, field_manager):
        return None
    return f"{kind} {name} was changed by another field manager"
