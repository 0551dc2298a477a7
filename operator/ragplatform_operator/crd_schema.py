"""Generate the RagPlatform CustomResourceDefinition from the spec and status models.

The pydantic models are the one source: the spec's (spec.py) and the status's (status_model.py)
descriptions, defaults, bounds, patterns and CEL rules become the CRD's structural
`openAPIV3Schema`, so `kubectl explain rag.spec` and `rag.status` read the same text as the
models. Run `python -m ragplatform_operator.crd_schema` to rewrite
`crds/ragplatform.io_ragplatforms.yaml`, the chart's copy and `docs/operator/reference.md`; unit
tests fail when any of them is stale.

The conversion handles what pydantic emits and a structural schema forbids: `$ref`s are
inlined, `X | None` becomes `X`, `int | str` becomes `x-kubernetes-int-or-string`, titles and
`additionalProperties: false` are dropped (the API server prunes unknown fields instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ragplatform_operator import API_GROUP, API_VERSION, KIND, PLURAL
from ragplatform_operator.reference_doc import render_reference
from ragplatform_operator.spec import (
    MAX_PLATFORM_NAME_LENGTH,
    PLATFORM_NAME_PATTERN,
    PlatformSpec,
)
from ragplatform_operator.status_model import PlatformStatus

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
    if isinstance(node.get("additionalProperties"), bool):
        # false: the API server prunes unknown fields anyway; true (a free-form dict): expressed
        # by the field's x-kubernetes-preserve-unknown-fields instead.
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


def _without_defaults(node: Any) -> Any:
    """The schema without `default`s: the operator writes every status field it means."""
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(item) for item in node]
    return node


def status_schema() -> dict[str, Any]:
    """Structural schema of `status`, from `PlatformStatus`.

    Unknown fields are preserved at its top level so that an operator newer than this CRD loses
    nothing.
    """
    raw = PlatformStatus.model_json_schema(by_alias=True, mode="serialization")
    schema = _without_defaults(_structural(raw, raw.get("$defs", {})))
    return {**schema, "x-kubernetes-preserve-unknown-fields": True}


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
        "# operator/ragplatform_operator/spec.py and status_model.py.\n"
        "# Do not edit by hand: change the spec models and regenerate.\n"
    )
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"] = _ordered(version["schema"]["openAPIV3Schema"])
    body = yaml.dump(crd, Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body


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
    reference.write_text(render_reference(spec_schema(), status_schema()), encoding="utf-8")
    print(f"wrote {reference}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
