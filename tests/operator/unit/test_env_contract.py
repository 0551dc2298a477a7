"""The env-var contract between the operator and the services.

Every variable the operator renders into a tier's container must be one that tier's service
reads (`SETTINGS_BY_SERVICE` in ragplatform.core.settings), every setting the production shape
needs must be rendered, and the rendered values must pass the service's own validation. The test
imports both packages; the operator package itself never imports `ragplatform` (checked below).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from ragplatform.core.settings import (
    DEFAULT_MAX_IN_FLIGHT,
    GATEWAY_MAX_IN_FLIGHT,
    SETTINGS_BY_SERVICE,
    CommonSettings,
    env_var_names,
    load_settings,
)
from ragplatform.core.tracing import OTEL_VARIABLES
from ragplatform_operator.spec import SERVICE_BY_TIER, TIER_NAMES, TierSpec
from tests.operator.unit.conftest import EXAMPLE_FILES, REPO_ROOT, find, load_example, render

# What each service needs to run in the production shape (PostgreSQL via PgBouncer, Redis, S3,
# Qdrant server, OpenAI-compatible endpoints), beyond the common variables.
COMMON = {
    "RAG_LOG_FORMAT",
    "RAG_GRPC_PORT",
    "RAG_METRICS_PORT",
    "RAG_DATA_DIR",
    "RAG_GRACE_PERIOD_SECONDS",
    "RAG_INTERNAL_TOKEN",  # the spec's Secret, or the one the operator generates
}
STORE = {"RAG_STORE_URL", "RAG_STORE_PASSWORD"}
QUEUE = {"RAG_QUEUE_URL", "RAG_QUEUE_NAME"}
# RAG_S3_ENDPOINT_URL only for non-AWS storage: the production example uses AWS S3.
BLOBS = {"RAG_BLOB_URL", "RAG_S3_REGION", "RAG_S3_ACCESS_KEY_ID", "RAG_S3_SECRET_ACCESS_KEY"}
EMBEDDER = {"RAG_EMBEDDER", "RAG_EMBEDDING_URL", "RAG_EMBEDDING_MODEL", "RAG_EMBEDDING_DIMENSION"}
# Workers too: they write chunks to the Qdrant server themselves.
VECTORS = {"RAG_VECTOR_URL", "RAG_VECTOR_COLLECTION"}
REQUIRED: dict[str, set[str]] = {
    "gateway": COMMON
    | STORE
    | {"RAG_REDIS_URL", "RAG_INGESTION_ADDR", "RAG_RETRIEVAL_ADDR", "RAG_GENERATION_ADDR", "RAG_CONVERSATION_ADDR"},
    "ingestion": COMMON | STORE | QUEUE | BLOBS | {"RAG_RETRIEVAL_ADDR"},
    "ingestion-worker": COMMON | STORE | QUEUE | BLOBS | EMBEDDER | VECTORS | {"RAG_RETRIEVAL_ADDR"},
    "retrieval": COMMON | EMBEDDER | VECTORS,
    "generation": COMMON | {"RAG_LLM", "RAG_LLM_URL", "RAG_LLM_MODEL"},
    "conversation": COMMON | STORE,
}
# Rendered only when the spec has the matching secret; the production example has them all.
WITH_SECRETS = {"RAG_EMBEDDING_API_KEY", "RAG_LLM_API_KEY", "RAG_VECTOR_API_KEY"}


def _env(children: list[dict[str, Any]], platform: str, tier: str) -> list[dict[str, Any]]:
    deployment = find(children, "Deployment", f"{platform}-{tier}")
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("tier", TIER_NAMES)
def test_every_rendered_variable_is_one_the_service_reads(example: Path, tier: str) -> None:
    document = load_example(example.stem)
    name = document["metadata"]["name"]
    service = SERVICE_BY_TIER[tier]  # type: ignore[index]

    rendered = {e["name"] for e in _env(render(document["spec"], name), name, tier)}

    # OTEL_* variables are read by the tracing setup (OpenTelemetry's standard names)
    assert rendered - env_var_names(SETTINGS_BY_SERVICE[service]) - OTEL_VARIABLES == set()


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_every_setting_the_production_shape_needs_is_rendered(production: dict[str, Any], tier: str) -> None:
    service = SERVICE_BY_TIER[tier]  # type: ignore[index]
    rendered = {e["name"] for e in _env(render(production, "rag-prod"), "rag-prod", tier)}

    missing = REQUIRED[service] - rendered
    assert missing == set()
    assert "RAG_INTERNAL_TOKEN" in rendered
    assert "RAG_S3_ENDPOINT_URL" not in rendered
    expected_secrets = WITH_SECRETS & env_var_names(SETTINGS_BY_SERVICE[service])
    assert expected_secrets - rendered == set(), "a configured secret did not reach the service"


def _started_settings(spec: dict[str, Any], name: str, tier: str) -> CommonSettings:
    """The settings `tier`'s service starts with from the env the operator renders for it."""
    values: dict[str, Any] = {}
    for var in _env(render(spec, name), name, tier):
        # A Secret's value is only known in the cluster; a placeholder of the right form stands in.
        value = var.get("value")
        if value is None:
            value = "redis://redis:6379/0" if var["name"] in ("RAG_QUEUE_URL", "RAG_REDIS_URL") else "from-a-secret"
        values[var["name"].removeprefix("RAG_").lower()] = value
    return load_settings(SETTINGS_BY_SERVICE[SERVICE_BY_TIER[tier]], **values)  # type: ignore[index]


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("tier", TIER_NAMES)
def test_rendered_values_pass_the_services_own_validation(example: Path, tier: str) -> None:
    document = load_example(example.stem)

    settings = _started_settings(document["spec"], document["metadata"]["name"], tier)

    dumped = settings.model_dump()
    if "store_url" in dumped:
        assert dumped["store_url"].startswith("postgresql://")
    if "embedder" in dumped:
        assert dumped["embedder"] == "openai"
    if "llm" in dumped:
        assert dumped["llm"] == "openai"
    assert str(dumped["data_dir"]).startswith("/tmp/")


def test_the_operator_package_never_imports_the_services_package() -> None:
    offenders = []
    for path in (REPO_ROOT / "operator" / "ragplatform_operator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            offenders += [f"{path.name}: {m}" for m in modules if m == "ragplatform" or m.startswith("ragplatform.")]
    assert offenders == []


def test_a_custom_s3_endpoint_reaches_the_blob_users(minimal: dict[str, Any]) -> None:
    children = render(minimal)

    for tier in ("ingestion", "workers"):
        env = {e["name"]: e.get("value") for e in _env(children, "demo", tier)}
        assert env["RAG_S3_ENDPOINT_URL"] == "http://minio.storage.svc:9000"


@pytest.mark.parametrize(("grace", "expected"), [(None, "300"), (120, "300"), (600, "600")])
def test_a_job_is_not_redelivered_while_its_worker_may_still_finish_it(
    minimal: dict[str, Any], grace: int | None, expected: str
) -> None:
    if grace is not None:
        minimal["workers"] = {"terminationGracePeriodSeconds": grace}
    env = {e["name"]: e.get("value") for e in _env(render(minimal), "demo", "workers")}

    assert env["RAG_VISIBILITY_TIMEOUT_SECONDS"] == expected
    assert float(str(env["RAG_GRACE_PERIOD_SECONDS"])) < float(expected)


def test_a_gateway_without_max_in_flight_starts_with_the_ceiling_from_its_measured_capacity(
    minimal: dict[str, Any],
) -> None:
    gateway = _started_settings(minimal, "demo", "gateway")
    behind = [_started_settings(minimal, "demo", tier) for tier in TIER_NAMES if tier != "gateway"]

    assert gateway.max_in_flight == GATEWAY_MAX_IN_FLIGHT < DEFAULT_MAX_IN_FLIGHT
    assert {settings.max_in_flight for settings in behind} == {DEFAULT_MAX_IN_FLIGHT}
    minimal["gateway"] = {"maxInFlight": 300}
    assert _started_settings(minimal, "demo", "gateway").max_in_flight == 300


def test_the_crd_states_the_defaults_the_services_start_with() -> None:
    description = TierSpec.model_fields["max_in_flight"].description or ""

    assert f"{GATEWAY_MAX_IN_FLIGHT} at the gateway" in description
    assert f"{DEFAULT_MAX_IN_FLIGHT} behind it" in description
