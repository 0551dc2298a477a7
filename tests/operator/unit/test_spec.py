"""parse_spec: the typed view of a RagPlatform spec, its defaults and its error messages."""

from __future__ import annotations

from typing import Any

import pytest

from ragplatform_operator.spec import SpecError, check_platform_name, parse_spec


def test_minimal_example_gets_documented_defaults(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)

    assert spec.gateway.fixed_replicas == 1
    assert spec.gateway.service.type == "ClusterIP"
    assert spec.retrieval.autoscaling is None
    assert spec.pgbouncer.pool_mode == "transaction"
    assert spec.postgres.port == 5432
    assert spec.redis.queue_name == "ingestion"
    assert spec.vector_store.managed is not None
    assert spec.vector_store.managed.replicas == 1
    # Workers with neither replicas nor autoscaling scale on queue depth with the defaults.
    scaling = spec.workers.queue_autoscaling
    assert scaling is not None
    assert (scaling.min_replicas, scaling.max_replicas, scaling.scale_down_stabilization_seconds) == (1, 10, 300)
    assert spec.workers.termination_grace_period_seconds == 300


def test_production_example_reads_every_block(production: dict[str, Any]) -> None:
    spec = parse_spec(production)

    assert spec.gateway.autoscaling is not None
    assert spec.gateway.autoscaling.target_cpu_utilization_percentage == 65
    assert spec.gateway.fixed_replicas is None
    assert spec.conversation.fixed_replicas == 3
    assert spec.workers.queue_autoscaling is not None
    assert spec.workers.queue_autoscaling.min_replicas == 0
    assert spec.workers.queue_autoscaling.activation_queue_depth == 1
    assert spec.vector_store.managed is not None
    assert spec.vector_store.managed.snapshot_schedule == "0 3 * * *"
    assert spec.llm.fallback_model == "gpt-4.1-nano"


def test_fixed_worker_replicas_turn_queue_autoscaling_off(minimal: dict[str, Any]) -> None:
    minimal["workers"] = {"replicas": 4}

    spec = parse_spec(minimal)

    assert spec.workers.queue_autoscaling is None
    assert spec.workers.max_replicas == 4


def _problem(raw: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return str(caught.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s.update(gateway={"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
            "spec.gateway.autoscaling: minReplicas (5) must be less than or equal to maxReplicas (2)",
        ),
        (
            lambda s: s.update(workers={"autoscaling": {"minReplicas": 3, "maxReplicas": 1}}),
            "spec.workers.autoscaling: minReplicas (3) must be less than or equal to maxReplicas (1)",
        ),
        (
            lambda s: s.update(retrieval={"replicas": 2, "autoscaling": {"maxReplicas": 4}}),
            "spec.retrieval: set either replicas (a fixed count) or autoscaling (bounds), not both",
        ),
        (
            lambda s: s["vectorStore"].update(external={"url": "http://qdrant:6333"}),
            "spec.vectorStore: set exactly one of vectorStore.managed or vectorStore.external",
        ),
        (
            lambda s: s["vectorStore"].pop("managed"),
            "spec.vectorStore: set exactly one of vectorStore.managed or vectorStore.external",
        ),
        (
            lambda s: s.update(generation={"env": [{"name": "RAG_LLM_MAX_TOKENS"}]}),
            "spec.generation.env[0]: env RAG_LLM_MAX_TOKENS: set exactly one of value or valueFrom",
        ),
        (
            lambda s: s["gateway"].update(replica=3) if "gateway" in s else s.update(gateway={"replica": 3}),
            "spec.gateway.replica: unknown field",
        ),
        (lambda s: s.pop("postgres"), "spec.postgres: Field required"),
        (lambda s: s["pgbouncer"].update(poolMode="statement"), "spec.pgbouncer.poolMode: Input should be"),
        (lambda s: s["embedding"].update(url="api.openai.com"), "spec.embedding.url: String should match pattern"),
        (
            lambda s: s["vectorStore"]["managed"].update(snapshotSchedule="nightly"),
            "spec.vectorStore.managed.snapshotSchedule: String should match pattern",
        ),
    ],
)
def test_invalid_spec_names_the_field_and_what_to_fix(minimal: dict[str, Any], change: Any, expected: str) -> None:
    change(minimal)

    message = _problem(minimal)

    assert expected in message
    assert "Fix these fields in the RagPlatform" in message


def test_every_problem_is_reported_at_once(minimal: dict[str, Any]) -> None:
    minimal["gateway"] = {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
    minimal["redis"] = {}

    message = _problem(minimal)

    assert "spec.gateway.autoscaling" in message
    assert "spec.redis.urlSecretRef: Field required" in message


def test_parse_spec_raises_only_spec_error_for_garbage() -> None:
    with pytest.raises(SpecError, match="spec: Input should be a valid dictionary"):
        parse_spec("not a mapping")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["demo", "rag-prod", "a", "a" * 40])
def test_platform_names_that_fit_child_names_pass(name: str) -> None:
    check_platform_name(name)


@pytest.mark.parametrize("name", ["Demo", "1rag", "rag-", "rag.prod", "a" * 41])
def test_platform_names_that_cannot_prefix_children_are_refused(name: str) -> None:
    with pytest.raises(SpecError, match="invalid RagPlatform name"):
        check_platform_name(name)
