"""Offline stand-ins for what the API server does with the CRD's schema: defaulting, OpenAPI
validation and CEL rules.

CEL rules are evaluated with cel-python, a CEL implementation in pure Python. It is not the API
server's own (Kubernetes adds library functions such as `quantity()`), so the CRD's rules stick to
standard CEL, which both evaluate alike; and every rule has a twin in `spec.py`, checked by the
tests, for a spec that reaches the operator without passing a real API server.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]
import yaml
from celpy.evaluation import CELEvalError

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "ragplatform.io_ragplatforms.yaml"


@functools.cache
def _parsed_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.load(CRD_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return crd


def load_crd() -> dict[str, Any]:
    """The CRD in crds/ as a dict (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed_crd())


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the CRD's one version."""
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of `value` with the schema's defaults filled in, as the API server does on write."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default_into(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default_into(extra, item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default_into(schema["items"], item)


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """OpenAPI schema violations of `document`, each as `path: message`."""
    validator = jsonschema.Draft7Validator(schema)
    return sorted(
        ".".join(str(part) for part in error.absolute_path) + ": " + error.message
        for error in validator.iter_errors(document)
    )


@functools.cache
def _compiled(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


_ABSENT = object()


def is_transition_rule(rule: str) -> bool:
    """A rule that reads `oldSelf`: the API server evaluates it only on an update, and only where
    the old object had a value at the rule's place."""
    return "oldSelf" in rule


def cel_violations(
    schema: dict[str, Any], document: Any, path: str = "", old: Any = _ABSENT
) -> list[tuple[str, str, str]]:
    """(path, rule, message) of every CEL rule that `document` (already defaulted) breaks.

    With `old` (the stored object, defaulted), this is an update: transition rules are checked
    too, wherever `old` has a value at the same place; without it, a create: they are skipped.
    """
    found: list[tuple[str, str, str]] = []
    for rule in schema.get("x-kubernetes-validations", []):
        activation = {"self": celpy.json_to_cel(document)}  # type: ignore[attr-defined]
        if is_transition_rule(rule["rule"]):
            if old is _ABSENT:
                continue
            activation["oldSelf"] = celpy.json_to_cel(old)  # type: ignore[attr-defined]
        try:
            result = _compiled(rule["rule"]).evaluate(activation)
        except CELEvalError as exc:  # e.g. a field the rule reads is missing
            result = exc
        where = path or "<root>"
        if isinstance(result, CELEvalError):
            found.append((where, rule["rule"], f"{rule['message']} (the rule failed: {result.args[0]})"))
        elif not bool(result):
            found.append((where + rule.get("fieldPath", ""), rule["rule"], rule["message"]))
    if isinstance(document, dict):
        for name, child in schema.get("properties", {}).items():
            if name in document:
                old_child = old.get(name, _ABSENT) if isinstance(old, dict) else _ABSENT
                found += cel_violations(child, document[name], f"{path}.{name}" if path else name, old_child)
    elif isinstance(document, list) and "items" in schema:
        # Transition rules inside lists would need list-type keys to pair items: none exist here.
        for index, item in enumerate(document):
            found += cel_violations(schema["items"], item, f"{path}[{index}]")
    return found


def all_cel_rules(schema: dict[str, Any]) -> set[str]:
    """Every CEL rule text anywhere in the schema."""
    rules = {rule["rule"] for rule in schema.get("x-kubernetes-validations", [])}
    for child in schema.get("properties", {}).values():
        rules |= all_cel_rules(child)
    if isinstance(schema.get("items"), dict):
        rules |= all_cel_rules(schema["items"])
    return rules
