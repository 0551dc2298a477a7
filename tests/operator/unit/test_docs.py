"""The operator docs: links resolve, and every documented `kubectl patch` of a RagPlatform is valid
JSON that, applied as a merge patch to an example, gives a spec the CRD and the operator accept
(and that changes what the docs say it changes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ragplatform_operator.spec import SpecError, parse_spec
from tests.operator.unit.conftest import REPO_ROOT, find, load_example, render
from tests.operator.unit.crd_evaluation import apply_defaults, cel_violations, load_crd, root_schema, schema_errors

DOCS = REPO_ROOT / "docs" / "operator"
PATCH = re.compile(r"kubectl patch rag NAME --type merge -p '(\{.*?\})'")


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as `kubectl patch --type merge` applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _documented_patches() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for match in PATCH.finditer(page.read_text()):
            found.append((f"{page.name}: {match.group(1)}", json.loads(match.group(1))))
    return found


PATCHES = _documented_patches()


def test_the_docs_show_a_patch_for_every_tier() -> None:
    patched = {tier for _, patch in PATCHES for tier in patch.get("spec", {})}

    assert {"gateway", "retrieval", "conversation", "workers", "pgbouncer", "vectorStore"} <= patched


@pytest.mark.parametrize(("where", "patch"), PATCHES, ids=[p[0] for p in PATCHES])
def test_every_documented_patch_gives_a_valid_platform(where: str, patch: dict[str, Any]) -> None:
    # Each patch is written for a tier in some shape (fixed or autoscaled): it must give a valid
    # platform from at least one example, and where it does not fit (a fixed count on an
    # autoscaled tier), the API server's rules and the operator's both refuse it.
    root = root_schema(load_crd())
    valid = 0
    for example in ("minimal", "production"):
        document = _merge_patch(load_example(example), patch)
        defaulted = apply_defaults(root, document)
        problems = schema_errors(root, defaulted) + [m for _, _, m in cel_violations(root, defaulted)]
        if not problems:
            parse_spec(document["spec"])
            valid += 1
        else:
            with pytest.raises(SpecError):
                parse_spec(document["spec"])
    assert valid >= 1, f"{where} gives no valid platform"


def test_pinning_an_autoscaled_tier_drops_its_hpa() -> None:
    patch = {"spec": {"gateway": {"autoscaling": None, "replicas": 8}}}
    assert ("scaling.md: " + json.dumps(patch, separators=(",", ":"))) in [w for w, _ in PATCHES]
    document = _merge_patch(load_example("production"), patch)

    children = render(document["spec"], "rag-prod")

    assert find(children, "Deployment", "rag-prod-gateway")["spec"]["replicas"] == 8
    assert not [c for c in children if c["kind"] == "HorizontalPodAutoscaler" and "gateway" in c["metadata"]["name"]]


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([\w./-]+)(?:#[\w-]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
