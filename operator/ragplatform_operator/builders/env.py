"""The environment of each tier's container: the operator's half of the env-var contract.

The names are the services' settings (`RAG_` + field name in
`services/ragplatform/core/settings.py`); a unit test checks every name rendered here against
`SETTINGS_BY_SERVICE` and that every setting the production shape needs is rendered. Secrets
are never copied: they are referenced with `secretKeyRef`, so the operator never reads them.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.internal_token import internal_token_ref
from ragplatform_operator.builders.metadata import Owner
from ragplatform_operator.builders.observability_env import build_observability_env
from ragplatform_operator.spec import EnvVar, PlatformSpec, SecretKeyRef, TierName, TierSpec

GRPC_PORT = 50051
METRICS_PORT = 9090
PGBOUNCER_PORT = 5432
QDRANT_PORTS = {"http": 6333, "grpc": 6334, "p2p": 6335}
QDRANT_HTTP_PORT = QDRANT_PORTS["http"]
DATA_DIR = "/tmp/ragplatform"

# Which concerns each tier's service is configured for (mirrors the settings classes).
_USES_STORE = {"gateway", "ingestion", "workers", "conversation"}
_USES_QUEUE = {"ingestion", "workers"}
_USES_BLOBS = {"ingestion", "workers"}
_USES_EMBEDDER = {"workers", "retrieval"}
_CALLS_RETRIEVAL = {"gateway", "ingestion", "workers"}


def grace_period_seconds(termination_grace_period_seconds: int) -> int:
    """RAG_GRACE_PERIOD_SECONDS for a pod: shorter than Kubernetes' grace period, so draining
    ends before the kubelet's SIGKILL (a margin of a fifth of it, between 1 and 10 seconds)."""
    margin = min(10, max(1, termination_grace_period_seconds // 5))
    return termination_grace_period_seconds - margin


def visibility_timeout_seconds(spec: PlatformSpec) -> int:
    """RAG_VISIBILITY_TIMEOUT_SECONDS of the workers: at least the workers' grace period.

    The grace period is documented as "longer than your longest job"; a shorter visibility
    timeout would hand a job that is still being finished to a second worker. 300 s (the
    services' default) is the floor.
    """
    return max(300, spec.workers.termination_grace_period_seconds)


def _value(name: str, value: str | int | float) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _secret(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def store_url(owner: Owner, spec: PlatformSpec) -> str:
    """RAG_STORE_URL: PostgreSQL through the platform's PgBouncer, never the server itself."""
    host = owner.service_address("pgbouncer", PGBOUNCER_PORT)
    return f"postgresql://{spec.postgres.user}@{host}/{spec.postgres.database}"


def vector_url(owner: Owner, spec: PlatformSpec) -> str:
    """RAG_VECTOR_URL: the managed Qdrant's client Service, or the external URL."""
    if spec.vector_store.external is not None:
        return spec.vector_store.external.url
    return "http://" + owner.service_address("qdrant", QDRANT_HTTP_PORT)


def _store_env(owner: Owner, spec: PlatformSpec) -> list[dict[str, Any]]:
    return [
        _value("RAG_STORE_URL", store_url(owner, spec)),
        _secret("RAG_STORE_PASSWORD", spec.postgres.password_secret_ref),
    ]


def _queue_env(spec: PlatformSpec) -> list[dict[str, Any]]:
    return [
        _secret("RAG_QUEUE_URL", spec.redis.url_secret_ref),
        _value("RAG_QUEUE_NAME", spec.redis.queue_name),
    ]


def _blob_env(spec: PlatformSpec) -> list[dict[str, Any]]:
    storage = spec.object_storage
    blob_url = f"s3://{storage.bucket}" + (f"/{storage.prefix}" if storage.prefix else "")
    env = [_value("RAG_BLOB_URL", blob_url), _value("RAG_S3_REGION", storage.region)]
    if storage.endpoint:
        env.append(_value("RAG_S3_ENDPOINT_URL", storage.endpoint))
    if storage.credentials_secret_ref is not None:
        creds = storage.credentials_secret_ref
        env.append(_secret("RAG_S3_ACCESS_KEY_ID", SecretKeyRef(name=creds.name, key=creds.access_key_id_key)))
        env.append(_secret("RAG_S3_SECRET_ACCESS_KEY", SecretKeyRef(name=creds.name, key=creds.secret_access_key_key)))
    return env


def _embedder_env(spec: PlatformSpec) -> list[dict[str, Any]]:
    embedding = spec.embedding
    env = [
        _value("RAG_EMBEDDER", "openai"),
        _value("RAG_EMBEDDING_URL", embedding.url),
        _value("RAG_EMBEDDING_MODEL", embedding.model),
        _value("RAG_EMBEDDING_DIMENSION", embedding.dimension),
    ]
    if embedding.api_key_secret_ref is not None:
        env.append(_secret("RAG_EMBEDDING_API_KEY", embedding.api_key_secret_ref))
    return env


def _vector_env(owner: Owner, spec: PlatformSpec) -> list[dict[str, Any]]:
    store = spec.vector_store
    env = [
        _value("RAG_VECTOR_URL", vector_url(owner, spec)),
        _value("RAG_VECTOR_COLLECTION", store.collection),
    ]
    api_key = store.managed.api_key_secret_ref if store.managed is not None else None
    if store.external is not None:
        api_key = store.external.api_key_secret_ref
    if api_key is not None:
        env.append(_secret("RAG_VECTOR_API_KEY", api_key))
    return env


def _llm_env(spec: PlatformSpec) -> list[dict[str, Any]]:
    llm = spec.llm
    env = [_value("RAG_LLM", "openai"), _value("RAG_LLM_URL", llm.url), _value("RAG_LLM_MODEL", llm.model)]
    if llm.fallback_model:
        env.append(_value("RAG_LLM_FALLBACK_MODEL", llm.fallback_model))
    if llm.api_key_secret_ref is not None:
        env.append(_secret("RAG_LLM_API_KEY", llm.api_key_secret_ref))
    return env


def _upstream_env(owner: Owner, tier: TierName) -> list[dict[str, Any]]:
    if tier == "gateway":
        return [
            _value(f"RAG_{service.upper()}_ADDR", owner.service_address(service, GRPC_PORT))
            for service in ("ingestion", "retrieval", "generation", "conversation")
        ]
    if tier in _CALLS_RETRIEVAL:
        return [_value("RAG_RETRIEVAL_ADDR", owner.service_address("retrieval", GRPC_PORT))]
    return []


def build_tier_env(owner: Owner, spec: PlatformSpec, tier: TierName) -> list[dict[str, Any]]:
    """Every environment variable of `tier`'s container, extra env applied last.

    An extra variable with the name of a rendered one replaces it in place (an escape hatch
    for SREs); others are appended in the order given.
    """
    tier_spec = spec.tier(tier)
    env = [
        _value("RAG_LOG_FORMAT", "json"),
        _value("RAG_LOG_LEVEL", spec.log_level),
        _value("RAG_GRPC_PORT", GRPC_PORT),
        _value("RAG_METRICS_PORT", METRICS_PORT),
        _value("RAG_DATA_DIR", DATA_DIR),
        _value("RAG_GRACE_PERIOD_SECONDS", grace_period_seconds(tier_spec.termination_grace_period_seconds)),
    ]
    env.append(_secret("RAG_INTERNAL_TOKEN", internal_token_ref(owner, spec)))
    if isinstance(tier_spec, TierSpec):
        if tier_spec.max_in_flight is not None:
            env.append(_value("RAG_MAX_IN_FLIGHT", tier_spec.max_in_flight))
        if tier_spec.admission_pace_seconds is not None:
            env.append(_value("RAG_ADMISSION_PACE_SECONDS", tier_spec.admission_pace_seconds))
        if tier_spec.admission_lag_target_seconds is not None:
            env.append(_value("RAG_ADMISSION_LAG_TARGET_SECONDS", tier_spec.admission_lag_target_seconds))
        if tier_spec.admission_mark_lag_seconds is not None:
            env.append(_value("RAG_ADMISSION_MARK_LAG_SECONDS", tier_spec.admission_mark_lag_seconds))
        if tier_spec.admission_latency_target_seconds is not None:
            env.append(_value("RAG_ADMISSION_LATENCY_TARGET_SECONDS", tier_spec.admission_latency_target_seconds))
    if tier in _USES_STORE:
        env += _store_env(owner, spec)
    if tier in _USES_QUEUE:
        env += _queue_env(spec)
    if tier in _USES_BLOBS:
        env += _blob_env(spec)
    if tier in _USES_EMBEDDER:
        env += _embedder_env(spec)
    if tier in ("retrieval", "workers"):  # workers write chunks to Qdrant themselves (chunk_writes.py)
        env += _vector_env(owner, spec)
    if tier == "generation":
        env += _llm_env(spec)
    if tier == "gateway":
        env.append(_secret("RAG_REDIS_URL", spec.redis.url_secret_ref))
    if tier == "workers":
        env.append(_value("RAG_WORKER_CONCURRENCY", spec.workers.concurrency))
        env.append(_value("RAG_VISIBILITY_TIMEOUT_SECONDS", visibility_timeout_seconds(spec)))
    env += _upstream_env(owner, tier)
    env += build_observability_env(owner, spec, tier)
    return _apply_extra_env(env, tier_spec.env)


def _extra_env_var(var: EnvVar) -> dict[str, Any]:
    if var.value_from is not None:
        return _secret(var.name, var.value_from.secret_key_ref)
    return _value(var.name, var.value or "")


def _apply_extra_env(env: list[dict[str, Any]], extra: list[EnvVar]) -> list[dict[str, Any]]:
    position = {item["name"]: index for index, item in enumerate(env)}
    for var in extra:
        rendered = _extra_env_var(var)
        if var.name in position:
            env[position[var.name]] = rendered
        else:
            position[var.name] = len(env)
            env.append(rendered)
    return env
