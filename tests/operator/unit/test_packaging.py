"""skaffold.yaml, the Dockerfiles and the wheel they install: everything referenced exists and
the images get what they need."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.operator.unit.conftest import REPO_ROOT

SKAFFOLD = REPO_ROOT / "skaffold.yaml"


def _configs() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(SKAFFOLD.read_text()) if doc]


def _referenced_paths(config: dict[str, Any]) -> list[str]:
    paths: list[str] = []
    sections = [config] + [profile for profile in config.get("profiles", [])]
    for section in sections:
        for artifact in section.get("build", {}).get("artifacts", []):
            context = artifact.get("context", ".")
            paths.append(context)
            paths.append(str(Path(context) / artifact.get("docker", {}).get("dockerfile", "Dockerfile")))
        for release in section.get("deploy", {}).get("helm", {}).get("releases", []):
            paths.append(release["chartPath"])
            paths += release.get("valuesFiles", [])
        paths += section.get("manifests", {}).get("rawYaml", [])
        for patch in section.get("patches", []):
            if patch.get("path", "").endswith(("/rawYaml", "/chartPath", "/dockerfile")):
                values = patch["value"] if isinstance(patch["value"], list) else [patch["value"]]
                paths += values
    return paths


def test_skaffold_references_only_files_that_exist() -> None:
    configs = _configs()
    referenced = [path for config in configs for path in _referenced_paths(config)]

    assert len(referenced) >= 6, "the parser found too few references to be checking anything"
    missing = [path for path in referenced if not (REPO_ROOT / path).exists()]
    assert missing == []


def test_skaffold_builds_both_images_and_feeds_them_to_the_chart_and_the_example() -> None:
    configs = _configs()
    images = {a["image"]: a["docker"]["dockerfile"] for c in configs for a in c["build"]["artifacts"]}

    assert images == {
        "ghcr.io/ragplatform/ragplatform-operator": "Dockerfile.operator",
        "ghcr.io/ragplatform/ragplatform": "Dockerfile.services",
    }
    release = configs[0]["deploy"]["helm"]["releases"][0]
    assert "IMAGE_REPO_ghcr_io_ragplatform_ragplatform_operator" in release["setValueTemplates"]["image.repository"]
    # The example config depends on the operator config (the CRD must exist first).
    assert configs[1]["requires"] == [{"configs": [configs[0]["metadata"]["name"]]}]
    assert {p["name"] for c in configs for p in c.get("profiles", [])} == {"dev"}


def _top_level_imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_operator_extra_covers_every_third_party_package_the_operator_imports() -> None:
    # The operator image installs `--no-deps .` plus the `operator` extra: nothing else.
    extra = {_distribution_name(r) for r in _pyproject()["project"]["optional-dependencies"]["operator"]}
    installed = {name.replace("-", "_") for name in extra} | ({"yaml"} if "pyyaml" in extra else set())

    imports = _top_level_imports(REPO_ROOT / "operator" / "ragplatform_operator")
    third_party = {name for name in imports if name not in sys.stdlib_module_names and name != "ragplatform_operator"}

    assert "kopf" in third_party
    assert third_party - installed == set()


def test_the_operator_extra_has_the_same_bounds_as_the_main_dependencies() -> None:
    project = _pyproject()["project"]
    main = {_distribution_name(r): r for r in project["dependencies"]}
    extra = project["optional-dependencies"]["operator"]

    assert extra, "the operator image would install no dependency"
    for requirement in extra:
        assert re.search(r"[<>=]", requirement), f"{requirement}: every pin must be bounded"
        assert main.get(_distribution_name(requirement)) == requirement, (
            f"{requirement}: the operator extra must repeat the main dependency's bounds exactly"
        )


def test_the_dockerfiles_need_no_heredoc_support() -> None:
    # buildah/podman before 1.33 and Docker's legacy builder reject heredocs (`RUN <<EOF`):
    # tests/images/ builds both images with buildah 1.28; this guards the fast suite too.
    for dockerfile in ("Dockerfile.services", "Dockerfile.operator"):
        assert "<<" not in (REPO_ROOT / dockerfile).read_text(), dockerfile


@pytest.mark.slow
def test_the_wheel_the_images_install_carries_the_data_files(tmp_path: Path) -> None:
    # Builds the real wheel from a copy of what the Dockerfiles COPY (setuptools writes build/
    # and egg-info next to the sources), without network (setuptools from the venv).
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("services", "operator"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    wheel = next(tmp_path.glob("ragplatform-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())

    sources = REPO_ROOT / "services"
    data_files = {str(p.relative_to(sources)) for p in sources.rglob("*.sql")}
    assert data_files, "expected the PostgreSQL migrations"
    assert data_files - names == set()
    assert "ragplatform_operator/py.typed" in names
    assert any(name.startswith("ragplatform_operator/builders/") for name in names)

    # What the operator image installs: the wheel's `operator` extra, as its Dockerfile's script
    # reads it from the installed metadata, equals the extra in pyproject.toml.
    from scripts.operator_requirements import pick_operator_requirements

    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    requires_dist = [
        line.removeprefix("Requires-Dist: ")
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist: ")
    ]

    def parsed(requirements: list[str]) -> dict[str, SpecifierSet]:
        return {Requirement(r).name.lower(): Requirement(r).specifier for r in requirements}

    picked = pick_operator_requirements(requires_dist)
    assert parsed(picked) == parsed(_pyproject()["project"]["optional-dependencies"]["operator"])


def test_the_example_skaffold_deploys_names_the_image_skaffold_builds() -> None:
    # skaffold only rewrites image fields whose value names one of its artifacts.
    configs = _configs()
    built = {a["image"] for c in configs for a in c["build"]["artifacts"]}
    for path in configs[1]["manifests"]["rawYaml"]:
        for document in yaml.safe_load_all((REPO_ROOT / path).read_text()):
            if document and document["kind"] == "RagPlatform":
                assert document["spec"]["image"].rsplit(":", 1)[0] in built, path
