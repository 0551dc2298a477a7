"""The typed, validated view of a RagPlatform's `spec`.

These pydantic models are the single source of the CRD's schema: `crd_schema` turns them (field
descriptions, defaults, bounds and the CEL rules attached to each model) into
`crds/ragplatform.io_ragplatforms.yaml`. Field names here are snake_case; the resource uses the
camelCase aliases.

Every CEL rule in the CRD has a twin `model_validator` here, because CEL is only evaluated by a
real API server: a spec that reaches the operator without having passed through one (or written
under an older CRD) is still caught, and `parse_spec` reports it as one `SpecError` whose message
names each bad field and what to do about it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

TierName = Literal["gateway", "ingestion", "workers", "retrieval", "generation", "conversation"]
TIER_NAMES: tuple[TierName, ...] = (
    "gateway",
    "ingestion",
    "workers",
    "retrieval",
    "generation",
    "conversation",
)
# The tiers that serve gRPC clients (every tier but the workers).
ServiceTierName = Literal["gateway", "ingestion", "retrieval", "generation", "conversation"]
SERVICE_TIER_NAMES: tuple[ServiceTierName, ...] = (
    "gateway",
    "ingestion",
    "retrieval",
    "generation",
    "conversation",
)
# The `workers` tier runs the ingestion worker; every other tier runs the service of its name.
SERVICE_BY_TIER: dict[TierName, str] = {
    "gateway": "gateway",
    "ingestion": "ingestion",
    "workers": "ingestion-worker",
    "retrieval": "retrieval",
    "generation": "generation",
    "conversation": "conversation",
}
# Child names are "<platform>-<suffix>"; the longest suffix is "-qdrant-headless" and a Service
# name is a 63-character DNS label, so platform names are capped well below that.
MAX_PLATFORM_NAME_LENGTH = 40
PLATFORM_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

DEFAULT_SERVICES_IMAGE = "ghcr.io/ragplatform/ragplatform:0.1.0"
DEFAULT_PGBOUNCER_IMAGE = "docker.io/edoburu/pgbouncer:1.23.1-p2"
DEFAULT_QDRANT_VERSION = "1.19.0"

Quantity = int | str
_SECRET_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Names that need no quoting in a PgBouncer config file or a PostgreSQL URL.
_PG_NAME = r"^[A-Za-z_][A-Za-z0-9_$-]*$"


class SpecError(ValueError):
    """A RagPlatform spec is invalid. The message lists every problem and how to fix it."""


def _cel(rule: str, message: str) -> Any:
    return {"rule": rule, "message": message}


MIGRATIONS_DOC = "docs/operator/migrations.md"


def _immutable(rule: str, field_path: str, message: str) -> Any:
    """A transition rule (it reads `oldSelf`): the API server checks it on updates only, and
    refuses a change that would orphan the stored vectors, naming the field."""
    return {"rule": rule, "message": message, "fieldPath": field_path, "reason": "FieldValueForbidden"}


# What a live platform must keep, because the vectors it stored depend on it. Each message says
# why and what to do instead. The operator checks the same against what it recorded in status
# (`stored_vectors` in status.py), for API servers that did not evaluate these rules.
EMBEDDING_MODEL_FROZEN = (
    "embedding.model cannot change on a live platform: every stored vector was made by the current "
    "model and would no longer match the questions. To change models, run a second RagPlatform with "
    f"the new model and its own vectorStore.collection, re-ingest the documents into it and move the "
    f"clients over ({MIGRATIONS_DOC})"
)
EMBEDDING_DIMENSION_FROZEN = (
    "embedding.dimension cannot change on a live platform: the collection holds vectors of the current "
    "size and would refuse the new ones. To change it, run a second RagPlatform with its own "
    f"vectorStore.collection and re-ingest the documents into it ({MIGRATIONS_DOC})"
)
COLLECTION_FROZEN = (
    "vectorStore.collection cannot change on a live platform: searches would read an empty collection "
    "while the documents' vectors stay in the current one. Keep it, or run a second RagPlatform with the "
    f"new collection and re-ingest the documents into it ({MIGRATIONS_DOC})"
)
STORE_KIND_FROZEN = (
    "vectorStore cannot switch between managed and external on a live platform: the stored vectors "
    "would stay behind in the current store. Copy the collection first (Qdrant snapshot, restore), "
    f"then recreate the RagPlatform pointing at the new store ({MIGRATIONS_DOC})"
)


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel)


class SecretKeyRef(_SpecModel):
    """A key in a Secret in the RagPlatform's namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253, pattern=_SECRET_NAME)
    key: str = Field(description="Key inside the Secret whose value is used.", min_length=1, max_length=253)


class ResourceRequirements(_SpecModel):
    """Compute resources of a container, as in a Pod spec; omitted: the tier's defaults."""

    requests: dict[str, Quantity] | None = Field(
        None, description="Minimum resources, e.g. {cpu: 250m, memory: 256Mi}; used for scheduling and HPA."
    )
    limits: dict[str, Quantity] | None = Field(
        None,
        description="Maximum resources, e.g. {memory: 1Gi}; a container above its memory limit is killed.",
    )


class EnvVarSource(_SpecModel):
    """Where an extra environment variable's value comes from."""

    secret_key_ref: SecretKeyRef = Field(description="Take the value from a key of a Secret.")


class EnvVar(_SpecModel):
    """One extra environment variable for a tier's container (e.g. RAG_LOG_LEVEL)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.value) != has(self.valueFrom)", "set exactly one of value or valueFrom")
            ]
        }
    )

    name: str = Field(
        description="Variable name; replaces an operator-rendered variable of the same name.",
        pattern=_ENV_NAME,
        max_length=253,
    )
    value: str | None = Field(None, description="Literal value.")
    value_from: EnvVarSource | None = Field(None, description="Value taken from a Secret.")

    @model_validator(mode="after")
    def _value_or_value_from(self) -> Self:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"env {self.name}: set exactly one of value or valueFrom")
        return self


class CpuAutoscaling(_SpecModel):
    """HorizontalPodAutoscaler bounds and target for a tier, on CPU utilisation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must be less than or equal to maxReplicas",
                )
            ]
        }
    )

    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas the autoscaler may run.")
    target_cpu_utilization_percentage: int = Field(
        70,
        alias="targetCPUUtilizationPercentage",
        ge=1,
        le=100,
        description="Average CPU use, as a percentage of the CPU request, the autoscaler aims at.",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas ({self.max_replicas})"
            )
        return self


_REPLICAS_XOR_AUTOSCALING = _cel(
    "!(has(self.replicas) && has(self.autoscaling))",
    "set either replicas (a fixed count) or autoscaling (bounds), not both",
)


class Toleration(_SpecModel):
    """A taint the tier's pods tolerate, as in a Pod spec."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.key) || self.operator == 'Exists'", "a toleration without key needs operator Exists"),
                _cel(
                    "!(self.operator == 'Exists' && has(self.value))",
                    "a toleration with operator Exists takes no value",
                ),
            ]
        }
    )

    key: str | None = Field(None, max_length=316, description="Taint key; omitted with operator Exists: every taint.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists (any value) or Equal (value must match).")
    value: str | None = Field(None, max_length=63, description="Taint value, with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; omitted: every effect."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="With NoExecute: how long the pod stays on a node after the taint appears."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without key needs operator Exists")
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists takes no value")
        return self


class _TierCommon(_SpecModel):
    image: str | None = Field(None, min_length=1, description="Container image of this tier; omitted: spec.image.")
    resources: ResourceRequirements | None = Field(
        None, description="CPU and memory requests and limits; omitted: sensible defaults for the tier."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=100,
        description="Extra environment variables; one with the name of a variable the operator renders replaces it.",
    )
    node_selector: dict[str, str] | None = Field(None, description="Node labels the tier's pods must run on.")
    tolerations: list[Toleration] | None = Field(
        None, max_length=50, description="Taints the tier's pods tolerate (e.g. of a dedicated node pool)."
    )
    priority_class_name: str | None = Field(
        None, min_length=1, max_length=253, description="PriorityClass of the tier's pods."
    )


class TierSpec(_TierCommon):
    """One gRPC service tier: its image, resources and either a fixed replica count or CPU autoscaling."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_REPLICAS_XOR_AUTOSCALING]})

    replicas: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Fixed number of replicas (the default is 1 when autoscaling is not set either). "
        "SREs scale a tier by patching this field.",
    )
    autoscaling: CpuAutoscaling | None = Field(
        None, description="Scale on CPU with a HorizontalPodAutoscaler instead of a fixed replica count."
    )
    termination_grace_period_seconds: int = Field(
        30,
        ge=5,
        le=3600,
        description="Time a pod gets to drain in-flight calls after SIGTERM before it is killed.",
    )
    max_in_flight: int | None = Field(
        None,
        ge=1,
        le=100000,
        description="The most calls one pod takes at once (RAG_MAX_IN_FLIGHT), the ceiling of its adaptive "
        "admission limit; the excess is refused at once with RESOURCE_EXHAUSTED and a retry-after hint, "
        "which clients honour. Omitted: the service's default, 158 at the gateway, 256 behind it. The gateway's "
        "comes from its capacity measured on one core (60 asks/s with a 2 s model): N = rate x (model latency "
        "+ 0.25 s) Asks in flight, plus 2 x sqrt(N) for random arrivals; for another core or model set it by "
        "the same sum, and for another model admissionPaceSeconds too (see docs/performance.md).",
    )
    admission_pace_seconds: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="Admit maxInFlight calls at most once per this many seconds, paced evenly (fewer "
        "while the adaptive limit is cut below maxInFlight; RAG_ADMISSION_PACE_SECONDS; at the gateway "
        "only Asks count), so an overloaded pod does not admit in waves; set it to the time a call takes "
        "(at the gateway, an Ask: the model's latency + 0.25 s), beside maxInFlight. 0: no pace. "
        "Omitted: the service's default (2.25 s at the "
        "gateway, for a 2 s model; none behind it).",
    )
    admission_lag_target_seconds: float | None = Field(
        None,
        ge=0,
        le=10,
        description="Event-loop lag above which a pod lowers its admission limit under maxInFlight "
        "(RAG_ADMISSION_LAG_TARGET_SECONDS), refusing at once what it could only queue; 0 keeps the limit "
        "fixed at maxInFlight. Omitted: the service's default (0.01 s at the gateway, 0.25 s behind it).",
    )
    admission_mark_lag_seconds: float | None = Field(
        None,
        ge=0,
        le=10,
        description="Tiers behind the gateway: event-loop lag above which a pod marks its answers congested "
        "(RAG_ADMISSION_MARK_LAG_SECONDS), so the gateway sheds before this tier has to refuse; 0: never "
        "mark. Omitted: the service's default (0.02 s).",
    )
    admission_latency_target_seconds: float | None = Field(
        None,
        ge=0,
        le=60,
        description="The gateway: how long the platform's own share of an Ask (its time in the gateway less the "
        "model's) may queue at the median over its no-load value before the pod cuts its admission limit by "
        "the gradient (RAG_ADMISSION_LATENCY_TARGET_SECONDS; see docs/performance.md). 0: not judged. "
        "Omitted: the service's default (0.1 s).",
    )

    @model_validator(mode="after")
    def _replicas_xor_autoscaling(self) -> Self:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set either replicas (a fixed count) or autoscaling (bounds), not both")
        return self

    @property
    def fixed_replicas(self) -> int | None:
        """The fixed replica count, or None when an HPA owns the count."""
        if self.autoscaling is not None:
            return None
        return 1 if self.replicas is None else self.replicas

    @property
    def max_replicas(self) -> int:
        """Most replicas this tier can run (drives whether it gets a PodDisruptionBudget)."""
        if self.autoscaling is not None:
            return self.autoscaling.max_replicas
        return 1 if self.replicas is None else self.replicas


class GatewayServiceSpec(_SpecModel):
    """How the gateway's Service is exposed."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Service type of the gateway, the platform's one public gRPC entry point."
    )
    annotations: dict[str, str] | None = Field(
        None, description="Annotations on the gateway Service (e.g. for a cloud load balancer)."
    )


class GatewayTierSpec(TierSpec):
    """The gateway tier: the public gRPC entry point (authentication, rate limits, answer cache)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_REPLICAS_XOR_AUTOSCALING]})

    service: GatewayServiceSpec = Field(
        default_factory=lambda: GatewayServiceSpec.model_validate({}),
        json_schema_extra={"default": {}},
        description="The gateway Service.",
    )


class QueueAutoscaling(_SpecModel):
    """Queue-depth autoscaling of the workers, done by the operator (not an HPA)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must be less than or equal to maxReplicas",
                )
            ]
        }
    )

    min_replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description="Fewest workers; 0 allows scaling to zero when the queue is empty.",
    )
    max_replicas: int = Field(10, ge=1, le=1000, description="Most workers.")
    target_queue_depth_per_replica: int = Field(
        10,
        ge=1,
        le=100000,
        description="Queued plus in-flight jobs one worker is expected to handle; desired workers = "
        "ceil(queue depth / this), clamped to the bounds.",
    )
    activation_queue_depth: int = Field(
        0,
        ge=0,
        le=100000,
        description="With zero workers, scale up only when the queue depth is above this.",
    )
    scale_up_stabilization_seconds: int = Field(
        0,
        ge=0,
        le=3600,
        description="A higher worker count must have been wanted for this long before scaling up (0: at once).",
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="A lower worker count must have been wanted for this long before scaling down.",
    )
    polling_interval_seconds: int = Field(
        2,
        ge=1,
        le=3600,
        description="How often the operator reads the queue depth (one cheap XINFO GROUPS call).",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas ({self.max_replicas})"
            )
        return self


class WorkersTierSpec(_TierCommon):
    """The ingestion workers: a fixed replica count, or (the default) queue-depth autoscaling."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_REPLICAS_XOR_AUTOSCALING]})

    replicas: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Fixed number of workers; turns queue autoscaling off. Omit both this and autoscaling "
        "for queue autoscaling with its defaults.",
    )
    autoscaling: QueueAutoscaling | None = Field(None, description="Scale the workers on the ingestion queue's depth.")
    termination_grace_period_seconds: int = Field(
        300,
        ge=10,
        le=86400,
        description="Time a worker gets after SIGTERM to finish or release its job before it is killed; "
        "make it longer than your longest ingestion job. A job is redelivered to another worker "
        "only after max(300, this) seconds without an acknowledgement.",
    )
    concurrency: int = Field(
        32,
        ge=1,
        le=64,
        description="Jobs one worker process runs at once (one receive takes as many messages); a slow document "
        "holds up only its own slot while others go on. Each job in hand holds its document: lower it for "
        "very large files.",
    )

    @model_validator(mode="after")
    def _replicas_xor_autoscaling(self) -> Self:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set either replicas (a fixed count) or autoscaling (bounds), not both")
        return self

    @property
    def queue_autoscaling(self) -> QueueAutoscaling | None:
        """The queue autoscaling in force, or None when the worker count is fixed."""
        if self.replicas is not None:
            return None
        return self.autoscaling if self.autoscaling is not None else QueueAutoscaling.model_validate({})

    @property
    def max_replicas(self) -> int:
        """Most workers that can run."""
        scaling = self.queue_autoscaling
        return scaling.max_replicas if scaling is not None else (self.replicas or 0)


class PostgresSpec(_SpecModel):
    """The PostgreSQL server. Services never connect to it directly: they go through PgBouncer."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$",
        description="Host name (or IP address) of the PostgreSQL server.",
    )
    port: int = Field(5432, ge=1, le=65535, description="Port of the PostgreSQL server.")
    database: str = Field(min_length=1, max_length=63, pattern=_PG_NAME, description="Database the platform uses.")
    user: str = Field(
        min_length=1,
        max_length=63,
        pattern=_PG_NAME,
        description="User the platform (and PgBouncer) connects as.",
    )
    password_secret_ref: SecretKeyRef = Field(description="Secret key holding that user's password.")
    # verify-ca / verify-full would need a CA bundle mounted into PgBouncer; not offered yet.
    ssl_mode: Literal["disable", "allow", "prefer", "require"] = Field(
        "prefer",
        description="TLS mode of PgBouncer's connections to PostgreSQL (require: encrypted, server "
        "certificate not verified).",
    )


class PgBouncerSpec(_SpecModel):
    """The PgBouncer connection pool the operator runs in front of PostgreSQL."""

    image: str = Field(DEFAULT_PGBOUNCER_IMAGE, min_length=1, description="PgBouncer container image.")
    replicas: int = Field(2, ge=1, le=100, description="PgBouncer replicas.")
    pool_mode: Literal["transaction", "session"] = Field(
        "transaction",
        description="transaction (recommended: a server connection is held only during a transaction) or session.",
    )
    default_pool_size: int = Field(
        20, ge=1, le=10000, description="Server connections per database and user, per PgBouncer replica."
    )
    max_client_connections: int = Field(
        1000, ge=1, le=100000, description="Client connections one PgBouncer replica accepts."
    )
    resources: ResourceRequirements | None = Field(None, description="PgBouncer's CPU and memory.")


class QdrantStorageSpec(_SpecModel):
    """The persistent volume of each Qdrant replica."""

    size: str = Field(
        "10Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$",
        description="Volume size per replica, e.g. 10Gi.",
    )
    storage_class_name: str | None = Field(None, description="StorageClass of the volumes; omitted: the default class.")


class ManagedQdrantSpec(_SpecModel):
    """A Qdrant StatefulSet run by the operator."""

    version: str = Field(
        DEFAULT_QDRANT_VERSION,
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
        description="Qdrant version (the unprivileged image of this version is used).",
    )
    image: str | None = Field(None, min_length=1, description="Full image reference; overrides version.")
    replicas: int = Field(1, ge=1, le=100, description="Qdrant nodes; more than 1 runs Qdrant in distributed mode.")
    storage: QdrantStorageSpec = Field(
        default_factory=lambda: QdrantStorageSpec.model_validate({}),
        json_schema_extra={"default": {}},
        description="Persistent storage.",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding Qdrant's API key (recommended); omitted: no authentication."
    )
    snapshot_schedule: str | None = Field(
        None,
        max_length=100,
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$",
        description="Cron schedule (e.g. '0 3 * * *') of a CronJob that snapshots the collection on every node.",
    )
    resources: ResourceRequirements | None = Field(None, description="Qdrant's CPU and memory.")


class ExternalQdrantSpec(_SpecModel):
    """A Qdrant server the operator does not run."""

    url: str = Field(pattern=r"^https?://", description="URL of the Qdrant HTTP API, e.g. https://qdrant.example:6333.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Secret key holding Qdrant's API key.")


class VectorStoreSpec(_SpecModel):
    """The Qdrant vector store: exactly one of managed or external; neither the kind of store nor
    the collection can change on a live platform."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.managed) != has(self.external)",
                    "set exactly one of vectorStore.managed or vectorStore.external",
                ),
                _immutable("self.collection == oldSelf.collection", ".collection", COLLECTION_FROZEN),
                _immutable("has(self.managed) == has(oldSelf.managed)", ".managed", STORE_KIND_FROZEN),
            ]
        }
    )

    managed: ManagedQdrantSpec | None = Field(None, description="Run Qdrant as a StatefulSet in this namespace.")
    external: ExternalQdrantSpec | None = Field(None, description="Use an existing Qdrant server.")
    collection: str = Field(
        "ragplatform_chunks",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Collection holding the chunk vectors.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.managed is None) == (self.external is None):
            raise ValueError("set exactly one of vectorStore.managed or vectorStore.external")
        return self


class RedisSpec(_SpecModel):
    """Redis: the ingestion queue (Redis Streams) and the gateway's rate limits and answer cache."""

    url_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Redis URL, redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)."
    )
    queue_name: str = Field(
        "ingestion",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the ingestion queue; the stream key is ragplatform:queue:<queueName>.",
    )


class S3CredentialsRef(_SpecModel):
    """A Secret holding S3 credentials."""

    name: str = Field(min_length=1, max_length=253, pattern=_SECRET_NAME, description="Name of the Secret.")
    access_key_id_key: str = Field("accessKeyId", min_length=1, description="Key holding the access key id.")
    secret_access_key_key: str = Field(
        "secretAccessKey", min_length=1, description="Key holding the secret access key."
    )


class ObjectStorageSpec(_SpecModel):
    """S3-compatible object storage for uploaded documents."""

    bucket: str = Field(
        min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$", description="Bucket name."
    )
    prefix: str | None = Field(None, pattern=r"^[^/].*$", description="Key prefix inside the bucket.")
    endpoint: str | None = Field(
        None, pattern=r"^https?://", description="S3-compatible endpoint URL (MinIO, Ceph…); omitted: AWS S3."
    )
    region: str = Field("us-east-1", min_length=1, description="Region of the bucket.")
    credentials_secret_ref: S3CredentialsRef | None = Field(
        None, description="Secret with the access keys; omitted: the default AWS chain (e.g. IRSA)."
    )


class EmbeddingSpec(_SpecModel):
    """The OpenAI-compatible embeddings endpoint; the model and dimension cannot change on a live
    platform."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _immutable("self.model == oldSelf.model", ".model", EMBEDDING_MODEL_FROZEN),
                _immutable("self.dimension == oldSelf.dimension", ".dimension", EMBEDDING_DIMENSION_FROZEN),
            ]
        }
    )

    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. https://api.openai.com/v1.")
    model: str = Field(min_length=1, description="Embedding model name at that endpoint.")
    dimension: int = Field(ge=8, le=8192, description="Size of the vectors the model returns.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Secret key holding the API key.")


class LlmSpec(_SpecModel):
    """The OpenAI-compatible chat endpoint that writes answers."""

    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. http://vllm:8000/v1.")
    model: str = Field(min_length=1, description="Chat model name.")
    fallback_model: str | None = Field(
        None, min_length=1, description="Model tried when the primary one fails or times out."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Secret key holding the API key.")


class NetworkPolicySpec(_SpecModel):
    """NetworkPolicies the operator renders."""

    enabled: bool = Field(
        True, description="Only the gateway reaches the backends and only the platform reaches its stores."
    )


class TracingSpec(_SpecModel):
    """OpenTelemetry tracing: rendered as the standard OTEL_* variables of every tier."""

    otlp_endpoint: str = Field(
        pattern=r"^https?://",
        description="OTLP/gRPC endpoint of a collector, e.g. http://otel-collector.observability:4317.",
    )
    insecure: bool = Field(True, description="Plain-text gRPC to the collector (false: TLS).")
    sampling_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces kept (a caller's sampling decision is honoured)."
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding OTLP headers, e.g. authorization=Bearer TOKEN (comma-separated)."
    )
    resource_attributes: dict[str, str] | None = Field(
        None, description="Extra resource attributes on every span, e.g. deployment.environment: prod."
    )


class ServiceMonitorSpec(_SpecModel):
    """A Prometheus Operator ServiceMonitor for the platform's metrics ports."""

    enabled: bool = Field(
        True, description="Render it when the cluster has the monitoring.coreos.com ServiceMonitor CRD."
    )
    interval: str = Field("30s", pattern=r"^[0-9]+(ms|s|m|h)$", description="Scrape interval.")
    labels: dict[str, str] | None = Field(
        None, description="Extra labels on the ServiceMonitor (e.g. the release label your Prometheus selects)."
    )


class ObservabilitySpec(_SpecModel):
    """Tracing and metrics scraping."""

    tracing: TracingSpec | None = Field(None, description="Export traces over OTLP; omitted: tracing off.")
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=lambda: ServiceMonitorSpec.model_validate({}),
        json_schema_extra={"default": {}},
        description="Prometheus Operator scraping.",
    )


def _tier_field(cls: type[_SpecModel], what: str) -> Any:
    return Field(default_factory=lambda: cls.model_validate({}), json_schema_extra={"default": {}}, description=what)


class PlatformSpec(_SpecModel):
    """Desired state of one RAG platform in a namespace."""

    image: str = Field(
        DEFAULT_SERVICES_IMAGE,
        min_length=1,
        description="Services image every tier runs unless the tier sets its own.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of every container."
    )
    image_pull_secrets: list[str] | None = Field(
        None, max_length=20, description="Names of Secrets used to pull images."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest log level written.")
    internal_token_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding the token the services authenticate each other with; without it the "
        "operator generates one in the Secret `<name>-internal-token`.",
    )
    network_policy: NetworkPolicySpec = _tier_field(NetworkPolicySpec, "NetworkPolicies.")
    observability: ObservabilitySpec = _tier_field(ObservabilitySpec, "Tracing and metrics scraping.")
    gateway: GatewayTierSpec = _tier_field(GatewayTierSpec, "The gateway tier.")
    ingestion: TierSpec = _tier_field(TierSpec, "The ingestion service tier (uploads, jobs).")
    workers: WorkersTierSpec = _tier_field(WorkersTierSpec, "The ingestion workers (parse, chunk, embed, index).")
    retrieval: TierSpec = _tier_field(TierSpec, "The retrieval service tier (vector search).")
    generation: TierSpec = _tier_field(TierSpec, "The generation service tier (LLM calls).")
    conversation: TierSpec = _tier_field(TierSpec, "The conversation service tier (history).")
    postgres: PostgresSpec = Field(description="The PostgreSQL server.")
    pgbouncer: PgBouncerSpec = _tier_field(PgBouncerSpec, "The PgBouncer pool in front of PostgreSQL.")
    vector_store: VectorStoreSpec = Field(description="The Qdrant vector store.")
    redis: RedisSpec = Field(description="Redis (queue, rate limits, answer cache).")
    object_storage: ObjectStorageSpec = Field(description="S3-compatible object storage.")
    embedding: EmbeddingSpec = Field(description="The embeddings endpoint.")
    llm: LlmSpec = Field(description="The chat (LLM) endpoint.")

    def tier(self, name: TierName) -> TierSpec | WorkersTierSpec:
        """The spec of one tier by name."""
        return self.workers if name == "workers" else self.service_tier(name)

    def service_tier(self, name: ServiceTierName) -> TierSpec:
        """The spec of one gRPC service tier (any tier but the workers) by name."""
        tier: TierSpec = getattr(self, name)
        return tier


def _format_location(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_spec(raw: dict[str, Any]) -> PlatformSpec:
    """Validate a RagPlatform's raw `spec` (camelCase, as stored) into a `PlatformSpec`.

    Raises `SpecError` listing every problem as `spec.<path>: <what is wrong>`, followed by what
    to do; never any other exception for bad input.
    """
    try:
        return PlatformSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            # "Value error, " is pydantic's prefix for our own validators' messages.
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling against `kubectl explain rag.spec`)"
            problems.append(f"  {_format_location(tuple(error['loc']))}: {message}")
        raise SpecError(
            "invalid RagPlatform spec:\n"
            + "\n".join(problems)
            + "\nFix these fields in the RagPlatform (see docs/operator/reference.md) and apply it again."
        ) from None


def check_platform_name(name: str) -> None:
    """Raise `SpecError` unless `name` can prefix every child's name (a DNS-1035 label, short enough)."""
    if len(name) > MAX_PLATFORM_NAME_LENGTH or not re.fullmatch(PLATFORM_NAME_PATTERN, name):
        raise SpecError(
            f"invalid RagPlatform name {name!r}: use at most {MAX_PLATFORM_NAME_LENGTH} lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit, because every child "
            "object's name starts with it. Create the RagPlatform again under such a name."
        )
