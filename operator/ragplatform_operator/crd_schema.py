"""Generate the RagPlatform CustomResourceDefinition from the spec models.

The spec's pydantic models are the one source: their descriptions, defaults, bounds, patterns
and CEL rules become the CRD's structural `openAPIV3Schema`, so `kubectl explain rag.spec` reads
the same text as the models. Run `python -m ragplatform_operator.crd_schema` to rewrite
`crds/ragplatform.io_ragplatforms.yaml`, the chart's copy and `docs/operator/reference.md`; unit
tests fail when any of them is stale.

The conversion handles what pydantic emits and a structural schema forbids: `$ref`s are
inlined, `X | None` becomes `X`, `int | str` becomes `x-kubernetes-int-or-string`, titles and
`additionalProperties: false` are dropped (the API server prunes unknown fields instead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ragplatform_operator import API_GROUP, API_VERSION, KIND, PLURAL
from ragplatform_operator.spec import (
    MAX_PLATFORM_NAME_LENGTH,
    PLATFORM_NAME_PATTERN,
    TIER_NAMES,
    PlatformSpec,
)

CRD_FILE_NAME = f"{API_GROUP}_{PLURAL}.yaml"
_DROPPED_KEYS = {"title", "$defs"}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys next to a $ref (the field's description and default) override the model's own.
        node = {**_structural(target, defs), **node}
    if "anyOf" in node:
        variants = [variant for variant in node.pop("anyOf") if variant != {"type": "null"}]
        if sorted(variant.get("type", "") for variant in variants) == ["integer", "string"]:
            node["x-kubernetes-int-or-string"] = True
        elif len(variants) == 1:
            node = {**_structural(variants[0], defs), **node}
        else:
            raise ValueError(f"cannot express anyOf {variants} in a structural schema")
    if node.get("default", ...) is None:
        del node["default"]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(child, defs) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    return out


def _described(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **schema}


def _replicas_status(what: str) -> dict[str, Any]:
    return _described(
        f"Replicas of {what}.",
        {
            "type": "object",
            "properties": {
                "desiredReplicas": _described("Replicas wanted.", {"type": "integer"}),
                "readyReplicas": _described("Replicas ready to serve.", {"type": "integer"}),
                "ready": _described("readyReplicas/desiredReplicas, for kubectl get.", {"type": "string"}),
            },
        },
    )


def status_schema() -> dict[str, Any]:
    """Schema of `status`, written by the operator.

    Unknown fields are preserved so that an operator newer than this CRD loses nothing.
    """
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _described(
                "Ready, Progressing, Degraded, or one per component (e.g. GatewayReady).", {"type": "string"}
            ),
            "status": _described("True, False or Unknown.", {"type": "string", "enum": ["True", "False", "Unknown"]}),
            "reason": _described("One CamelCase word saying why.", {"type": "string"}),
            "message": _described("What is happening, and what to do if anything.", {"type": "string"}),
            "lastTransitionTime": _described("When status last changed.", {"type": "string", "format": "date-time"}),
            "observedGeneration": _described("metadata.generation this condition describes.", {"type": "integer"}),
        },
    }
    components: dict[str, Any] = {tier: _replicas_status(f"the {tier} tier") for tier in TIER_NAMES}
    components["pgbouncer"] = _replicas_status("PgBouncer")
    components["vectorStore"] = _replicas_status("the managed Qdrant")
    return {
        "type": "object",
        "description": "Observed state of the platform, written by the operator.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": _described("metadata.generation the operator last reconciled.", {"type": "integer"}),
            "conditions": _described(
                "Current conditions: Ready, Progressing, Degraded and one per component.",
                {
                    "type": "array",
                    "items": _described("One condition.", condition),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                },
            ),
            "tiers": _described(
                "Desired and ready replicas per component.",
                {"type": "object", "properties": components},
            ),
            "autoscaler": _described(
                "The queue autoscaler's memory across operator restarts (last decision, recent "
                "recommendations); read lastDecision to see why the workers were last scaled.",
                {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            ),
            "queue": _described(
                "The ingestion queue and the last worker scaling decision.",
                {
                    "type": "object",
                    "properties": {
                        "depth": _described(
                            "Jobs queued or in flight (consumer-group lag + pending).", {"type": "integer"}
                        ),
                        "desiredReplicas": _described("Workers the autoscaler wants now.", {"type": "integer"}),
                        "lastScaleTime": _described(
                            "When the worker count was last changed.",
                            {"type": "string", "format": "date-time"},
                        ),
                        "lastScaleReason": _described("Why the worker count was last changed.", {"type": "string"}),
                        "lastError": _described(
                            "Why the queue depth could not be read, if it could not.", {"type": "string"}
                        ),
                    },
                },
            ),
        },
    }


def spec_schema() -> dict[str, Any]:
    """Structural schema of `spec`, from `PlatformSpec`."""
    raw = PlatformSpec.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _printer_columns() -> list[dict[str, Any]]:
    def column(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
        col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
        if priority:
            col["priority"] = priority
        return col

    return [
        column(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "Whether every component is ready.",
        ),
        column("Gateway", "string", ".status.tiers.gateway.ready", "Ready/desired gateway replicas."),
        column("Workers", "string", ".status.tiers.workers.ready", "Ready/desired ingestion workers."),
        column("Queue", "integer", ".status.queue.depth", "Ingestion jobs queued or in flight."),
        column("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', "Why (not) ready.", 1),
        column("Retrieval", "string", ".status.tiers.retrieval.ready", "Ready/desired retrieval replicas.", 1),
        column("Generation", "string", ".status.tiers.generation.ready", "Ready/desired generation replicas.", 1),
        column("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
    ]


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition as a dict."""
    root = {
        "type": "object",
        "description": "A RAG platform: gRPC services, ingestion workers, PgBouncer and Qdrant, run by the "
        "ragplatform operator in this namespace.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "Kind of this object: RagPlatform."},
            # The API server forbids anything but `type` here (even a description): metadata is
            # always the standard ObjectMeta.
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_PLATFORM_NAME_LENGTH} && "
                f"self.metadata.name.matches('{PLATFORM_NAME_PATTERN}')",
                "message": f"the name must be at most {MAX_PLATFORM_NAME_LENGTH} lowercase letters, digits "
                "and '-', starting with a letter: every child object's name starts with it",
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{API_GROUP}",
            "labels": {
                "app.kubernetes.io/name": "ragplatform-operator",
                "app.kubernetes.io/part-of": "ragplatform",
            },
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["rag"],
                "categories": ["ragplatform"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated sub-schemas out in full: anchors would make the CRD hard to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# Keys first in every schema node so that the file reads like documentation.
_KEY_ORDER = ("description", "type", "default", "required")


def _ordered(node: Any) -> Any:
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    if not isinstance(node, dict):
        return node
    first = [key for key in _KEY_ORDER if key in node]
    rest = [key for key in node if key not in _KEY_ORDER]
    return {key: _ordered(node[key]) for key in first + rest}


def render_crd() -> str:
    """The CRD file's exact text."""
    header = (
        "# Generated by `python -m ragplatform_operator.crd_schema` from the models in\n"
        "# operator/ragplatform_operator/spec.py.\n"
        "# Do not edit by hand: change the spec models and regenerate.\n"
    )
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"] = _ordered(version["schema"]["openAPIV3Schema"])
    body = yaml.dump(crd, Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body


def _type_of(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    if "enum" in node:
        return ", ".join(f"`{value}`" for value in node["enum"])
    if node.get("type") == "array":
        return f"list of {_type_of(node.get('items', {}))}"
    if node.get("type") == "object" and "additionalProperties" in node:
        return f"map of {_type_of(node['additionalProperties'])}"
    return str(node.get("type", "any"))


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "minimum" in node or "maximum" in node:
        parts.append(f"{node.get('minimum', '')}..{node.get('maximum', '')}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "maxItems" in node:
        parts.append(f"at most {node['maxItems']} items")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(f"rule: {rule['message']}")
    return "; ".join(parts)


def _cell(text: str) -> str:
    # A literal "|" would end a Markdown table cell.
    return text.replace("|", "\\|").replace("\n", " ")


def _reference_rows(node: dict[str, Any], path: str, required: bool) -> list[str]:
    default = node.get("default")
    default_text = "" if default is None else f"`{json.dumps(default)}`"
    description = _cell(str(node.get("description", "")))
    constraints = _cell(_constraints(node))
    required_text = "yes" if required else ""
    rows = [f"| `{path}` | {_type_of(node)} | {required_text} | {default_text} | {description} | {constraints} |"]
    children = node.get("properties", {})
    if node.get("type") == "array" and "properties" in node.get("items", {}):
        children = node["items"]["properties"]
        needed = set(node["items"].get("required", []))
        path = f"{path}[]"
    else:
        needed = set(node.get("required", []))
    for name, child in children.items():
        rows += _reference_rows(child, f"{path}.{name}", name in needed)
    return rows


def render_reference() -> str:
    """docs/operator/reference.md: every spec field with its type, default, meaning and rules."""
    spec = spec_schema()
    lines = [
        "# RagPlatform field reference",
        "",
        "<!-- Generated by `python -m ragplatform_operator.crd_schema` from the spec models; do not edit. -->",
        "",
        f"`apiVersion: {API_GROUP}/{API_VERSION}`, `kind: {KIND}` (short name `rag`), namespaced. The same "
        "text is served by the cluster: `kubectl explain rag.spec --recursive`, or `kubectl explain "
        "rag.spec.workers.autoscaling` for one block.",
        "",
        f"`metadata.name`: at most {MAX_PLATFORM_NAME_LENGTH} lowercase letters, digits and `-`, starting "
        "with a letter (every child object's name starts with it).",
        "",
        "Rules marked *rule* are CEL validation rules: the API server refuses a RagPlatform that breaks one, "
        "with the message shown. The operator checks the same rules again and reports a spec that breaks "
        "them in the `Degraded` condition.",
        "",
        "| field | type | required | default | meaning | constraints |",
        "|---|---|---|---|---|---|",
    ]
    required = set(spec.get("required", []))
    for name, child in spec["properties"].items():
        lines += _reference_rows(child, f"spec.{name}", name in required)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the CRD to crds/ and the chart's crds/, and the field reference to docs/operator/.

    Run from the repository root.
    """
    del argv
    text = render_crd()
    for directory in (Path("crds"), Path("charts/ragplatform-operator/crds")):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CRD_FILE_NAME).write_text(text, encoding="utf-8")
        print(f"wrote {directory / CRD_FILE_NAME}")
    reference = Path("docs/operator/reference.md")
    reference.parent.mkdir(parents=True, exist_ok=True)
    reference.write_text(render_reference(), encoding="utf-8")
    print(f"wrote {reference}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
