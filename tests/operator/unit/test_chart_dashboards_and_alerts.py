"""The chart's Grafana dashboard and PrometheusRule: rendered only when enabled, the dashboard
checked against a JSON schema of what Grafana needs, every query and alert expression parsed by a
real PromQL parser (promql-parser: Python bindings of GreptimeDB's Rust port of Prometheus's
parser), and every metric they name one the services export."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import promql_parser
import pytest
from prometheus_client import REGISTRY

import ragplatform.core.metrics  # noqa: F401  (registers the services' metrics)
from tests.operator.unit.conftest import K8S_VERSION
from tests.operator.unit.test_chart import CHART, _template

DASHBOARD_FILE = CHART / "dashboards" / "ragplatform.json"
DATASOURCE = {"type": "object", "required": ["type", "uid"], "properties": {"type": {"const": "prometheus"}}}
GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
    },
}
# What Grafana (schemaVersion 39) needs of a dashboard it imports, for the panel types used here.
DASHBOARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {"type": {"enum": ["datasource", "query", "custom", "interval", "constant"]}},
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["row", "timeseries", "stat"]},
                    "gridPos": GRID,
                    "datasource": DATASOURCE,
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}, "datasource": DATASOURCE},
                        },
                    },
                },
                "if": {"properties": {"type": {"enum": ["timeseries", "stat"]}}},
                "then": {"required": ["targets", "datasource", "fieldConfig"]},
            },
        },
    },
}
# Grafana's built-in variables, replaced by what Grafana would put there before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "rag-prod"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return data


def exported_series() -> set[str]:
    """Every series name the services' metrics produce (with _bucket, _count, _total...)."""
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):  # no public listing of collectors
        for family in collector.collect():
            names.update(sample.name for sample in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "gauge":
                names.add(family.name)
    return {n for n in names if n.startswith("ragplatform_")}


def check_promql(expr: str) -> set[str]:
    """Parse `expr` (raises ValueError with the parser's message) and return the metrics it names."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    promql_parser.parse(expr)
    return set(re.findall(r"\bragplatform_[a-z_]+\b", expr))


def test_the_parser_rejects_broken_promql() -> None:
    """The checks below would be worthless if the parser took anything."""
    for broken in ("sum(rate(x[5m])", "rate(x[5q])", "x >", "histogram_quantile(0.9, sum by (le) rate(x[5m]))"):
        with pytest.raises(ValueError, match=r"."):
            promql_parser.parse(broken)


def test_dashboard_matches_the_schema_and_every_query_parses_and_names_real_metrics() -> None:
    board = dashboard()
    jsonschema.validate(board, DASHBOARD_SCHEMA)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    named: set[str] = set()
    for panel in panels:
        for target in panel.get("targets", []):
            named |= check_promql(target["expr"])
    unknown = named - exported_series()
    assert unknown == set(), f"the dashboard queries metrics nobody exports: {unknown}"
    # what SREs asked for is on it
    assert {
        "ragplatform_grpc_server_handled_total",
        "ragplatform_grpc_server_handling_seconds_bucket",
        "ragplatform_ingestion_queue_depth",
        "ragplatform_ingestion_jobs_total",
        "ragplatform_llm_tokens_total",
        "ragplatform_llm_request_seconds_bucket",
        "ragplatform_answer_cache_total",
    } <= named


def test_nothing_renders_unless_enabled() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _template()}
    assert ("PrometheusRule", "rp-ragplatform-operator-alerts") not in kinds
    assert ("ConfigMap", "rp-ragplatform-operator-dashboard") not in kinds


def test_dashboard_configmap_carries_the_dashboard_for_grafanas_sidecar() -> None:
    documents = _template("--set", "grafanaDashboard.enabled=true")
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    kubernetes_validate.validate(config_map, K8S_VERSION, strict=True)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["ragplatform.json"]) == dashboard()


def _rules(*values: str) -> dict[str, dict[str, Any]]:
    documents = _template("--set", "prometheusRule.enabled=true", *values)
    rule = next(d for d in documents if d["kind"] == "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_every_alert_expression_parses_and_names_real_metrics() -> None:
    rules = _rules()
    assert {
        "RagPlatformHighErrorRate",
        "RagPlatformAskLatencyOverBudget",
        "RagPlatformIngestionBacklogOld",
        "RagPlatformIngestionStalled",
        "RagPlatformDeadLettersGrowing",
    } <= set(rules)
    series = exported_series()
    for name, rule in rules.items():
        named = check_promql(rule["expr"])
        assert named, name
        assert named <= series, f"{name} names metrics nobody exports: {named - series}"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        if "for" in rule:
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name


def test_alert_thresholds_come_from_the_values() -> None:
    rules = _rules("--set-json", "prometheusRule.askP99Seconds=7.5", "--set-json", "prometheusRule.errorRatio=0.02")
    assert rules["RagPlatformAskLatencyOverBudget"]["expr"].rstrip().endswith("> 7.5")
    assert rules["RagPlatformHighErrorRate"]["expr"].rstrip().endswith("> 0.02")
    check_promql(rules["RagPlatformAskLatencyOverBudget"]["expr"])
