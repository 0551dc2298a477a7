"""Fixtures of the operator's unit tests: the example RagPlatforms and their rendered children."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragplatform_operator.builders import build_children
from ragplatform_operator.spec import PlatformSpec, parse_spec

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES_DIR = REPO_ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.yaml"))
NAMESPACE = "rag-test"
UID = "0b5f1c9e-4d1a-4a57-9a3c-5f1f2c3d4e5f"
K8S_VERSION = "1.33.0"


def load_example(name: str) -> dict[str, Any]:
    """The example RagPlatform `examples/<name>.yaml` as a dict (a fresh copy each call)."""
    return copy.deepcopy(yaml.safe_load((EXAMPLES_DIR / f"{name}.yaml").read_text()))


def render(raw_spec: dict[str, Any], name: str = "demo", worker_replicas: int | None = None) -> list[dict[str, Any]]:
    """Every child of a RagPlatform with this raw (camelCase) spec."""
    return build_children(name, NAMESPACE, UID, parse_spec(raw_spec), worker_replicas)


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one child of `kind` named `name`; fails the test when absent."""
    matches = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def names_of(children: list[dict[str, Any]], kind: str) -> set[str]:
    """Names of the children of one kind."""
    return {c["metadata"]["name"] for c in children if c["kind"] == kind}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """The raw spec of examples/minimal.yaml."""
    spec: dict[str, Any] = load_example("minimal")["spec"]
    return spec


@pytest.fixture
def production() -> dict[str, Any]:
    """The raw spec of examples/production.yaml."""
    spec: dict[str, Any] = load_example("production")["spec"]
    return spec


@pytest.fixture
def production_spec(production: dict[str, Any]) -> PlatformSpec:
    """The parsed spec of examples/production.yaml."""
    return parse_spec(production)
