"""`spec.observability.tracing` becomes the standard OTEL_* variables of every tier, which the
services' tracing setup then reads; without it no OTEL_* variable is rendered (tracing off)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ragplatform.core.tracing import tracing_requested
from ragplatform_operator.spec import TIER_NAMES
from tests.operator.unit.conftest import find, render


def _env(children: list[dict[str, Any]], tier: str) -> dict[str, Any]:
    container = find(children, "Deployment", f"demo-{tier}")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_no_tracing_block_renders_no_otel_variable(minimal: dict[str, Any], tier: str) -> None:
    env = _env(render(minimal), tier)
    assert not [name for name in env if name.startswith("OTEL_")]
    assert tracing_requested({k: v for k, v in env.items() if isinstance(v, str)}) is False


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_tracing_block_turns_tracing_on_in_every_tier(minimal: dict[str, Any], tier: str) -> None:
    spec = copy.deepcopy(minimal)
    spec["observability"] = {
        "tracing": {
            "otlpEndpoint": "http://otel-collector.observability:4317",
            "samplingRatio": 0.25,
            "resourceAttributes": {"deployment.environment": "staging"},
            "headersSecretRef": {"name": "otlp", "key": "headers"},
        }
    }
    env = _env(render(spec), tier)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert env["OTEL_EXPORTER_OTLP_INSECURE"] == "true"
    assert env["OTEL_SERVICE_NAME"].startswith("ragplatform-")
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "service.namespace=demo,k8s.namespace.name=rag-test,deployment.environment=staging"
    )
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.25")
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {"secretKeyRef": {"name": "otlp", "key": "headers"}}
    assert tracing_requested({k: v for k, v in env.items() if isinstance(v, str)}) is True


def test_a_tracing_endpoint_must_be_a_url(minimal: dict[str, Any]) -> None:
    from ragplatform_operator.spec import SpecError, parse_spec

    spec = copy.deepcopy(minimal)
    spec["observability"] = {"tracing": {"otlpEndpoint": "otel-collector:4317"}}
    with pytest.raises(SpecError, match="otlpEndpoint"):
        parse_spec(spec)
