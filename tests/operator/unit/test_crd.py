"""The RagPlatform CRD: generated from the spec models, structural, documented, and it accepts the
examples and rejects invalid platforms with messages that say what to fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from ragplatform_operator.crd_schema import render_crd, spec_schema, status_schema
from ragplatform_operator.reference_doc import render_reference
from ragplatform_operator.spec import (
    COLLECTION_FROZEN,
    EMBEDDING_DIMENSION_FROZEN,
    EMBEDDING_MODEL_FROZEN,
    STORE_KIND_FROZEN,
    SpecError,
    parse_spec,
)
from tests.operator.unit.conftest import EXAMPLE_FILES, K8S_VERSION, REPO_ROOT, load_example
from tests.operator.unit.crd_evaluation import (
    CRD_PATH,
    all_cel_rules,
    apply_defaults,
    cel_violations,
    is_transition_rule,
    load_crd,
    root_schema,
    schema_errors,
)

CHART_CRD_PATH = REPO_ROOT / "charts" / "ragplatform-operator" / "crds" / CRD_PATH.name


def test_crd_file_is_up_to_date_with_the_spec_models() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crd(), (
        "crds/ is stale: run `python -m ragplatform_operator.crd_schema`"
    )


def test_chart_ships_the_identical_crd_file() -> None:
    assert CHART_CRD_PATH.read_bytes() == CRD_PATH.read_bytes()


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(load_crd(), K8S_VERSION, strict=True)


def test_crd_names_scope_status_and_printer_columns() -> None:
    crd = load_crd()
    version = crd["spec"]["versions"][0]

    assert crd["metadata"]["name"] == "ragplatforms.ragplatform.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["rag"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert {"Ready", "Gateway", "Workers", "Queue", "Age"} <= set(columns)
    # Every status column points at a field the status schema declares.
    status = root_schema(crd)["properties"]["status"]
    for name, path in columns.items():
        if path.startswith(".status.") and "[" not in path:
            node = status
            for part in path.removeprefix(".status.").split("."):
                assert part in node.get("properties", {}), f"column {name}: {path} is not in the status schema"
                node = node["properties"][part]


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        nodes += _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        nodes += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        nodes += _walk(schema["additionalProperties"], f"{path}{{}}")
    return nodes


def test_every_field_has_a_description() -> None:
    root = root_schema(load_crd())
    undocumented = [
        f"{path}.{name}"
        for path, node in _walk(root, "")
        for name, child in node.get("properties", {}).items()
        if not child.get("description")
    ]
    # metadata is the one exception: Kubernetes refuses a CRD that describes it.
    assert undocumented == [".metadata"]


def test_schema_is_structural() -> None:
    root = root_schema(load_crd())
    # At the root, metadata may only be `type: object` (the API server forbids even a description).
    assert root["properties"]["metadata"] == {"type": "object"}
    for path, node in _walk(root, ""):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & set(node), path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"{path} has no type"


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_pass_the_schema_and_every_cel_rule(example: Any) -> None:
    root = root_schema(load_crd())
    document = apply_defaults(root, load_example(example.stem))

    assert schema_errors(root, document) == []
    assert cel_violations(root, document) == []


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_crd_defaults_agree_with_the_spec_models(example: Any) -> None:
    root = root_schema(load_crd())
    raw = load_example(example.stem)
    defaulted = apply_defaults(root, raw)

    assert parse_spec(defaulted["spec"]) == parse_spec(raw["spec"])


Mutation = Callable[[dict[str, Any]], Any]

# Rejected by the OpenAPI schema alone: (mutation, path, words of the message).
SCHEMA_REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    (
        "negative replicas",
        lambda d: d["spec"].update(gateway={"replicas": -1}),
        "spec.gateway.replicas",
        "less than the minimum of 0",
    ),
    ("no postgres", lambda d: d["spec"].pop("postgres"), "spec", "'postgres' is a required property"),
    (
        "bad pool mode",
        lambda d: d["spec"]["pgbouncer"].update(poolMode="statement"),
        "spec.pgbouncer.poolMode",
        "is not one of ['transaction', 'session']",
    ),
    (
        "url without scheme",
        lambda d: d["spec"]["llm"].update(url="api.openai.com/v1"),
        "spec.llm.url",
        "does not match '^https?://'",
    ),
    (
        "secret ref without key",
        lambda d: d["spec"]["redis"].update(urlSecretRef={"name": "redis"}),
        "spec.redis.urlSecretRef",
        "'key' is a required property",
    ),
    (
        "tiny embedding",
        lambda d: d["spec"]["embedding"].update(dimension=2),
        "spec.embedding.dimension",
        "less than the minimum of 8",
    ),
    (
        "bad storage size",
        lambda d: d["spec"]["vectorStore"]["managed"].update(storage={"size": "lots"}),
        "spec.vectorStore.managed.storage.size",
        "does not match",
    ),
    (
        "latency target over a minute",
        lambda d: d["spec"].update(gateway={"admissionLatencyTargetSeconds": 90}),
        "spec.gateway.admissionLatencyTargetSeconds",
        "greater than the maximum of 60",
    ),
    (
        "string replicas",
        lambda d: d["spec"].update(workers={"replicas": "three"}),
        "spec.workers.replicas",
        "'three' is not of type 'integer'",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "path", "words"), [c[1:] for c in SCHEMA_REJECTIONS], ids=[c[0] for c in SCHEMA_REJECTIONS]
)
def test_schema_rejects_invalid_platforms_with_the_path(mutation: Mutation, path: str, words: str) -> None:
    root = root_schema(load_crd())
    document = load_example("minimal")
    mutation(document)

    errors = schema_errors(root, apply_defaults(root, document))

    assert any(error.startswith(path + ":") and words in error for error in errors), errors
    # The operator's own validation refuses the same spec.
    with pytest.raises(SpecError):
        parse_spec(document["spec"])


# Rejected only by CEL rules: (mutation, path, message).
CEL_REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    (
        "cpu min above max",
        lambda d: d["spec"].update(gateway={"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}),
        "spec.gateway.autoscaling",
        "minReplicas must be less than or equal to maxReplicas",
    ),
    (
        "queue min above max",
        lambda d: d["spec"].update(workers={"autoscaling": {"minReplicas": 12, "maxReplicas": 3}}),
        "spec.workers.autoscaling",
        "minReplicas must be less than or equal to maxReplicas",
    ),
    (
        "replicas and autoscaling",
        lambda d: d["spec"].update(generation={"replicas": 2, "autoscaling": {"maxReplicas": 3}}),
        "spec.generation",
        "set either replicas (a fixed count) or autoscaling (bounds), not both",
    ),
    (
        "workers replicas and autoscaling",
        lambda d: d["spec"].update(workers={"replicas": 2, "autoscaling": {"maxReplicas": 3}}),
        "spec.workers",
        "set either replicas (a fixed count) or autoscaling (bounds), not both",
    ),
    (
        "gateway replicas and autoscaling",
        lambda d: d["spec"].update(gateway={"replicas": 2, "autoscaling": {"maxReplicas": 3}}),
        "spec.gateway",
        "set either replicas (a fixed count) or autoscaling (bounds), not both",
    ),
    (
        "both vector stores",
        lambda d: d["spec"]["vectorStore"].update(external={"url": "https://qdrant.example:6333"}),
        "spec.vectorStore",
        "set exactly one of vectorStore.managed or vectorStore.external",
    ),
    (
        "no vector store",
        lambda d: d["spec"]["vectorStore"].pop("managed"),
        "spec.vectorStore",
        "set exactly one of vectorStore.managed or vectorStore.external",
    ),
    (
        "toleration without key",
        lambda d: d["spec"].update(workers={"tolerations": [{"effect": "NoSchedule"}]}),
        "spec.workers.tolerations[0]",
        "a toleration without key needs operator Exists",
    ),
    (
        "toleration exists with value",
        lambda d: d["spec"].update(gateway={"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "spec.gateway.tolerations[0]",
        "a toleration with operator Exists takes no value",
    ),
    (
        "env with value and secret",
        lambda d: d["spec"].update(
            conversation={
                "env": [{"name": "RAG_X", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
            }
        ),
        "spec.conversation.env[0]",
        "set exactly one of value or valueFrom",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "path", "message"), [c[1:] for c in CEL_REJECTIONS], ids=[c[0] for c in CEL_REJECTIONS]
)
def test_cel_rules_reject_what_the_schema_cannot_say(mutation: Mutation, path: str, message: str) -> None:
    root = root_schema(load_crd())
    document = load_example("minimal")
    mutation(document)
    defaulted = apply_defaults(root, document)

    assert schema_errors(root, defaulted) == []
    assert (path, message) in [(p, m) for p, _, m in cel_violations(root, defaulted)]
    # The twin check in spec.py catches the same spec when no API server evaluated the rule.
    with pytest.raises(SpecError):
        parse_spec(document["spec"])


@pytest.mark.parametrize("name", ["Demo", "a" * 41, "9lives"])
def test_cel_rule_refuses_names_that_cannot_prefix_children(name: str) -> None:
    root = root_schema(load_crd())
    document = load_example("minimal")
    document["metadata"]["name"] = name

    violations = cel_violations(root, apply_defaults(root, document))

    assert [p for p, _, _ in violations] == ["<root>"]


def _external_store(d: dict[str, Any]) -> None:
    d["spec"]["vectorStore"] = {"external": {"url": "https://qdrant.example:6333"}}


# Updates of a live platform that would orphan its stored vectors: (name, mutation, path, message).
TRANSITION_REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    (
        "embedding model",
        lambda d: d["spec"]["embedding"].update(model="text-embedding-3-large"),
        "spec.embedding.model",
        EMBEDDING_MODEL_FROZEN,
    ),
    (
        "embedding dimension",
        lambda d: d["spec"]["embedding"].update(dimension=768),
        "spec.embedding.dimension",
        EMBEDDING_DIMENSION_FROZEN,
    ),
    (
        "collection (the default one until now)",
        lambda d: d["spec"]["vectorStore"].update(collection="chunks_v2"),
        "spec.vectorStore.collection",
        COLLECTION_FROZEN,
    ),
    ("managed to external", _external_store, "spec.vectorStore.managed", STORE_KIND_FROZEN),
]


def _update_violations(mutation: Mutation, before: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    root = root_schema(load_crd())
    old = apply_defaults(root, before or load_example("minimal"))
    new = copy.deepcopy(old)
    mutation(new)
    new = apply_defaults(root, new)
    assert schema_errors(root, new) == []
    return cel_violations(root, new, old=old)


@pytest.mark.parametrize(
    ("mutation", "path", "message"),
    [c[1:] for c in TRANSITION_REJECTIONS],
    ids=[c[0] for c in TRANSITION_REJECTIONS],
)
def test_transition_rules_refuse_a_live_change_that_would_orphan_the_vectors(
    mutation: Mutation, path: str, message: str
) -> None:
    violations = _update_violations(mutation)

    assert [(p, m) for p, _, m in violations] == [(path, message)]
    assert "docs/operator/migrations.md" in message
    # A new platform may choose any of these: the rules only look at updates.
    root = root_schema(load_crd())
    created = load_example("minimal")
    mutation(created)
    assert cel_violations(root, apply_defaults(root, created)) == []


def test_external_to_managed_is_refused_too() -> None:
    external = load_example("minimal")
    _external_store(external)

    def back_to_managed(d: dict[str, Any]) -> None:
        d["spec"]["vectorStore"] = {"managed": {"storage": {"size": "5Gi"}}}

    violations = _update_violations(back_to_managed, before=external)

    assert [m for _, _, m in violations] == [STORE_KIND_FROZEN]


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["spec"]["embedding"].update(url="https://embeddings.example/v1"),
        lambda d: d["spec"]["llm"].update(model="another-chat-model"),
        lambda d: d["spec"]["vectorStore"]["managed"].update(version="1.20.0", replicas=3),
        lambda d: d["spec"].update(gateway={"replicas": 4}),
    ],
    ids=["embedding url", "llm model", "qdrant version and replicas", "gateway replicas"],
)
def test_transition_rules_let_every_other_live_change_through(mutation: Mutation) -> None:
    assert _update_violations(mutation) == []


def test_every_cel_rule_is_exercised_by_an_invalid_case() -> None:
    root = root_schema(load_crd())
    triggered: set[str] = set()
    for _, mutation, _, _ in CEL_REJECTIONS:
        document = load_example("minimal")
        mutation(document)
        triggered |= {rule for _, rule, _ in cel_violations(root, apply_defaults(root, document))}
    document = load_example("minimal")
    document["metadata"]["name"] = "Bad"
    triggered |= {rule for _, rule, _ in cel_violations(root, apply_defaults(root, document))}
    for _, mutation, _, _ in TRANSITION_REJECTIONS:
        triggered |= {rule for _, rule, _ in _update_violations(mutation)}

    assert all_cel_rules(root) == triggered
    assert sum(is_transition_rule(rule) for rule in triggered) == 4


def test_field_reference_doc_is_up_to_date_and_lists_every_spec_field() -> None:
    reference = REPO_ROOT / "docs" / "operator" / "reference.md"
    text = reference.read_text(encoding="utf-8")

    assert text == render_reference(spec_schema(), status_schema()), (
        "docs/operator/reference.md is stale: run `python -m ragplatform_operator.crd_schema`"
    )
    spec = root_schema(load_crd())["properties"]["spec"]
    for path, node in _walk(spec, "spec"):
        for name in node.get("properties", {}):
            assert f"`{path}.{name}`" in text, f"{path}.{name} missing from the reference"
