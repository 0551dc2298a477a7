"""build_children: every child labelled, owned by the RagPlatform, uniquely named, deterministic."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from ragplatform_operator.builders import build_children
from ragplatform_operator.spec import SpecError, parse_spec
from tests.operator.unit.conftest import EXAMPLE_FILES, K8S_VERSION, NAMESPACE, UID, load_example, render


def _variants() -> list[tuple[str, dict[str, Any], int | None]]:
    """Every example, plus shapes the examples do not show, with a worker count."""
    variants: list[tuple[str, dict[str, Any], int | None]] = [
        (path.stem, load_example(path.stem), None) for path in EXAMPLE_FILES
    ]
    external = load_example("minimal")
    external["spec"]["vectorStore"] = {"external": {"url": "https://q.example:6333"}}
    external["spec"]["networkPolicy"] = {"enabled": False}
    external["spec"]["workers"] = {"replicas": 2}
    variants.append(("external-fixed-workers", external, None))
    snapshots = load_example("minimal")
    snapshots["spec"]["vectorStore"]["managed"]["snapshotSchedule"] = "@daily"
    variants.append(("snapshots-without-api-key", snapshots, 3))
    variants.append(("production-scaled", load_example("production"), 12))
    return variants


VARIANTS = _variants()


@pytest.mark.parametrize(("label", "document", "workers"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_manifest_is_valid_for_kubernetes_in_strict_mode(
    label: str, document: dict[str, Any], workers: int | None
) -> None:
    children = render(document["spec"], document["metadata"]["name"], workers)

    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("label", "document", "workers"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_child_is_labelled_and_owned_by_the_platform(
    label: str, document: dict[str, Any], workers: int | None
) -> None:
    name = document["metadata"]["name"]
    children = render(document["spec"], name, workers)

    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["name"].startswith(f"{name}-")
        assert meta["labels"]["app.kubernetes.io/instance"] == name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "ragplatform-operator"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "ragplatform"
        assert meta["labels"]["app.kubernetes.io/component"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "ragplatform.io/v1alpha1",
                "kind": "RagPlatform",
                "name": name,
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    keys = [(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in children]
    assert len(keys) == len(set(keys)), "two children would overwrite each other"


def test_same_inputs_give_the_same_manifests(production: dict[str, Any]) -> None:
    assert render(production, "rag-prod", 4) == render(production, "rag-prod", 4)


def test_stores_come_before_the_tiers_that_use_them(minimal: dict[str, Any]) -> None:
    kinds = [(c["kind"], c["metadata"]["labels"]["app.kubernetes.io/component"]) for c in render(minimal)]

    first_tier = kinds.index(("Deployment", "gateway"))
    assert kinds.index(("Deployment", "pgbouncer")) < first_tier
    assert kinds.index(("StatefulSet", "qdrant")) < first_tier


def test_a_name_that_cannot_prefix_children_is_a_spec_error(minimal: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="invalid RagPlatform name 'Demo'"):
        build_children("Demo", NAMESPACE, UID, parse_spec(minimal), None)


def test_production_renders_the_expected_set_of_objects(production: dict[str, Any]) -> None:
    kinds: dict[str, int] = {}
    for child in render(production, "rag-prod"):
        kinds[child["kind"]] = kinds.get(child["kind"], 0) + 1

    assert kinds == {
        "ServiceAccount": 8,
        "ConfigMap": 1,
        "Deployment": 7,
        "Service": 8,
        "PodDisruptionBudget": 8,
        "NetworkPolicy": 8,
        "StatefulSet": 1,
        "CronJob": 1,
        "HorizontalPodAutoscaler": 4,
    }


def _dropped_leaves(node: Any, path: str = "") -> list[str]:
    """Paths of values the API server omits when stored: false, empty lists and empty maps."""
    if isinstance(node, dict):
        if not node:
            return [path]
        return [p for key, value in node.items() for p in _dropped_leaves(value, f"{path}.{key}")]
    if isinstance(node, list):
        if not node:
            return [path]
        return [p for index, value in enumerate(node) for p in _dropped_leaves(value, f"{path}[{index}]")]
    return [path] if node is False else []


# Fields whose Go type is a pointer (*bool): the API server stores false, so rendering it is fine.
POINTER_BOOLS = ("automountServiceAccountToken", "allowPrivilegeEscalation")


@pytest.mark.parametrize(("label", "document", "workers"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_nothing_rendered_that_the_server_would_drop(label: str, document: dict[str, Any], workers: int | None) -> None:
    # A plain bool, list or map with omitempty is not stored when false or empty, so rendering one
    # would look like drift on every comparison with the live object.
    offenders = [
        f"{c['kind']}/{c['metadata']['name']}{p}"
        for c in render(document["spec"], document["metadata"]["name"], workers)
        for p in _dropped_leaves(c)
        if not p.endswith(POINTER_BOOLS)
    ]
    assert offenders == []
