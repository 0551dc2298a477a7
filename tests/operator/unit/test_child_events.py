"""Which child events start a repair of the owner, and how repairs of one owner are spaced."""

from __future__ import annotations

import asyncio
from typing import Any

from ragplatform_operator.child_events import OwnWrites, changed_by_someone_else, owner_uid, reconcile_reason
from ragplatform_operator.repair_requests import RepairBackoff, RepairRequests

OPERATOR = "ragplatform-operator"


def deployment(version: str = "10", managers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "demo-gateway",
            "namespace": "rag",
            "resourceVersion": version,
            "ownerReferences": [
                {"apiVersion": "ragplatform.io/v1alpha1", "kind": "RagPlatform", "uid": "u-1", "controller": True}
            ],
            "managedFields": managers or [],
        },
    }


def entry(manager: str, time: str, subresource: str | None = None) -> dict[str, Any]:
    found = {"manager": manager, "operation": "Apply" if manager == OPERATOR else "Update", "time": time}
    return {**found, "subresource": subresource} if subresource else found


def test_owner_is_the_controlling_ragplatform_only() -> None:
    assert owner_uid(deployment()) == "u-1"
    other = deployment()
    other["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "uid": "x", "controller": True}
    ]
    assert owner_uid(other) is None
    not_controller = deployment()
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    assert owner_uid(not_controller) is None


def test_an_edit_by_another_manager_after_the_operators_apply_counts() -> None:
    edited = deployment(
        managers=[entry(OPERATOR, "2026-11-29T10:00:00Z"), entry("kubectl-set", "2026-11-29T10:05:00Z")]
    )
    assert changed_by_someone_else(edited, OPERATOR)
    # Same second as the apply: counted (a pass in sync is a no-op; a missed edit is not).
    same_second = deployment(
        managers=[entry(OPERATOR, "2026-11-29T10:00:00Z"), entry("kubectl-set", "2026-11-29T10:00:00Z")]
    )
    assert changed_by_someone_else(same_second, OPERATOR)


def test_older_edits_and_status_updates_do_not_count() -> None:
    reverted = deployment(
        managers=[entry("kubectl-set", "2026-11-29T10:00:00Z"), entry(OPERATOR, "2026-11-29T10:05:00Z")]
    )
    assert not changed_by_someone_else(reverted, OPERATOR)
    status = deployment(
        managers=[
            entry(OPERATOR, "2026-11-29T10:00:00Z"),
            entry("kube-controller-manager", "2026-11-29T10:09:00Z", "status"),
        ]
    )
    assert not changed_by_someone_else(status, OPERATOR)


def test_without_managed_fields_or_without_the_operators_entry_it_counts() -> None:
    assert changed_by_someone_else(deployment(), OPERATOR)
    assert changed_by_someone_else(deployment(managers=[entry("kubectl-create", "2026-11-29T10:00:00Z")]), OPERATOR)


def test_the_event_of_the_operators_own_write_is_ignored_even_without_managed_fields() -> None:
    own = OwnWrites()
    own.record(deployment(version="42"))
    assert reconcile_reason("MODIFIED", deployment(version="42"), own, OPERATOR) is None
    # The next version is someone else's write.
    assert reconcile_reason("MODIFIED", deployment(version="43"), own, OPERATOR) == (
        "Deployment demo-gateway was changed by another field manager"
    )


def test_deletions_count_unless_the_operator_pruned_the_object() -> None:
    own = OwnWrites()
    assert reconcile_reason("DELETED", deployment(), own, OPERATOR) == "Deployment demo-gateway was deleted"
    own.record_deletion(("Deployment", "rag", "demo-gateway"))
    assert reconcile_reason("DELETED", deployment(), own, OPERATOR) is None


def test_the_initial_listing_and_objects_being_deleted_start_nothing() -> None:
    own = OwnWrites()
    assert reconcile_reason(None, deployment(), own, OPERATOR) is None
    terminating = deployment()
    terminating["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    assert reconcile_reason("MODIFIED", terminating, own, OPERATOR) is None


def test_own_writes_forget_the_oldest_beyond_their_capacity() -> None:
    own = OwnWrites(capacity=2)
    for name in ("a", "b", "c"):
        obj = deployment(version="1")
        obj["metadata"]["name"] = name
        own.record(obj)
    names = [
        n
        for n in ("a", "b", "c")
        if own.is_own({**deployment(version="1"), "metadata": {"name": n, "namespace": "rag", "resourceVersion": "1"}})
    ]
    assert names == ["b", "c"]


async def test_requests_reach_only_an_open_mailbox_and_a_burst_is_taken_at_once() -> None:
    requests = RepairRequests()
    assert not requests.request("u-1", "Deployment a was deleted")
    with requests.mailbox("u-1") as box:
        assert requests.request("u-1", "Deployment a was deleted")
        assert requests.request("u-1", "Service b was deleted")
        assert requests.request("u-1", "Deployment a was deleted")  # duplicates collapse
        await asyncio.wait_for(box.wakeup.wait(), 1)
        assert box.take() == ["Deployment a was deleted", "Service b was deleted"]
        assert not box.wakeup.is_set()
    assert not requests.request("u-1", "Deployment a was deleted")


async def test_closing_wakes_every_repair_loop_open_now_and_opened_later() -> None:
    requests = RepairRequests()
    with requests.mailbox("u-1") as open_before:
        assert not open_before.wakeup.is_set()
        requests.close()
        await asyncio.wait_for(open_before.wakeup.wait(), 1)
        with requests.mailbox("u-2") as opened_after:  # a daemon kopf spawned again on exit
            assert opened_after.wakeup.is_set()
    assert requests.closed


def test_backoff_lets_three_passes_through_then_doubles_and_resets_on_a_quiet_pass() -> None:
    backoff = RepairBackoff()
    now = 0.0
    delays = []
    for _ in range(7):
        delay = backoff.delay(now)
        delays.append(delay)
        now += delay
        backoff.passed(now, repaired=True)
    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    backoff.passed(now, repaired=False)
    assert backoff.delay(now) == 0.0


def test_backoff_is_capped_and_forgets_after_a_quiet_spell() -> None:
    backoff = RepairBackoff(streak=30, last_pass=0.0)
    assert backoff.delay(0.0) == backoff.maximum
    assert backoff.delay(30.0) == backoff.maximum - 30.0  # time already waited counts
    assert backoff.delay(backoff.forget_after + 1) == 0.0
