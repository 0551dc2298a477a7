"""The RagPlatform's `status` as typed models, like the spec: the one description of its shape.

The CRD's status schema is generated from `PlatformStatus` (`crd_schema.status_schema`), the
status builders in `status.py` fill these models, and a previous operator's status is read back
through them (`PlatformStatus.from_raw`), so the three cannot drift apart. Field descriptions
become `kubectl explain rag.status` text.

Conditions follow the Kubernetes convention (and cloudnative-pg's typed conditions): `type`,
`status` ("True"/"False"/"Unknown"), a CamelCase `reason`, a `message` that says what to do
when something is wrong, `lastTransitionTime` and `observedGeneration`. `Condition.of` is the
one place a condition is made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

ConditionStatus = Literal["True", "False", "Unknown"]


class _StatusModel(BaseModel):
    # Reading tolerates what an older or newer operator wrote (unknown keys are ignored).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)


class Condition(_StatusModel):
    """One condition of the platform or of one of its components."""

    type: str = Field(
        description="Ready, Progressing, Degraded, WorkersAutoscaling, or one per component (e.g. GatewayReady)."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word saying why.")
    message: str = Field(default="", description="What is happening, and what to do if anything.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="metadata.generation this condition describes.")

    @classmethod
    def of(cls, type_: str, ok: bool | None, reason: str, message: str) -> Condition:
        """A condition that is True (`ok`), False (not `ok`) or Unknown (`ok` None)."""
        return cls(
            type=type_, status="Unknown" if ok is None else ("True" if ok else "False"), reason=reason, message=message
        )


class TierReplicas(_StatusModel):
    """Replicas of one component."""

    desired_replicas: int = Field(description="Replicas wanted.")
    ready_replicas: int = Field(description="Replicas ready to serve.")
    ready: str = Field(description="readyReplicas/desiredReplicas, for kubectl get.")


class TiersStatus(_StatusModel):
    """Desired and ready replicas per component (absent: not rendered, e.g. an external store)."""

    gateway: TierReplicas | None = Field(default=None, description="Replicas of the gateway tier.")
    ingestion: TierReplicas | None = Field(default=None, description="Replicas of the ingestion tier.")
    workers: TierReplicas | None = Field(default=None, description="Replicas of the workers tier.")
    retrieval: TierReplicas | None = Field(default=None, description="Replicas of the retrieval tier.")
    generation: TierReplicas | None = Field(default=None, description="Replicas of the generation tier.")
    conversation: TierReplicas | None = Field(default=None, description="Replicas of the conversation tier.")
    pgbouncer: TierReplicas | None = Field(default=None, description="Replicas of PgBouncer.")
    vector_store: TierReplicas | None = Field(default=None, description="Replicas of the managed Qdrant.")


class QueueStatus(_StatusModel):
    """The ingestion queue and the last worker scaling decision."""

    depth: int | None = Field(default=None, description="Jobs queued or in flight (consumer-group lag + pending).")
    desired_replicas: int | None = Field(default=None, description="Workers the autoscaler wants now.")
    last_scale_time: datetime | None = Field(default=None, description="When the worker count was last changed.")
    last_scale_reason: str | None = Field(default=None, description="Why the worker count was last changed.")
    last_error: str | None = Field(default=None, description="Why the queue depth could not be read, if it could not.")


class ScalingDecisionRecord(_StatusModel):
    """One decision of the queue autoscaler."""

    time: datetime = Field(description="When it was decided.")
    reason: str = Field(description="ScaledUp, ScaledDown, ScaleDownStabilizing, BelowActivation, ...")
    message: str = Field(description="The decision in words.")
    queue_depth: int = Field(description="The queue depth it was based on.")
    from_replicas: int = Field(description="Workers before.")
    to_replicas: int = Field(description="Workers after (or wanted, while stabilising).")


class AutoscalerStatus(_StatusModel):
    """The queue autoscaler's memory across operator restarts."""

    last_decision: ScalingDecisionRecord | None = Field(
        default=None, description="The latest decision: read it to see why the workers were last scaled."
    )
    state: dict[str, Any] | None = Field(
        default=None,
        description="Recent recommendations and windows in progress (the autoscaler's own format).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class StoredVectors(_StatusModel):
    """What the platform's stored vectors were made with, recorded on its first successful pass."""

    model: str = Field(description="spec.embedding.model the vectors were made by.")
    dimension: int = Field(description="spec.embedding.dimension of the vectors.")
    collection: str = Field(description="spec.vectorStore.collection holding them.")
    store: Literal["managed", "external"] = Field(description="The kind of vector store holding them.")


class PlatformStatus(_StatusModel):
    """Observed state of the platform, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current conditions: Ready, Progressing, Degraded and one per component.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    tiers: TiersStatus | None = Field(default=None, description="Desired and ready replicas per component.")
    queue: QueueStatus | None = Field(
        default=None, description="The ingestion queue and the last worker scaling decision."
    )
    stored_vectors: StoredVectors | None = Field(
        default=None,
        description="What the stored vectors were made with: the operator refuses a spec that differs "
        "(docs/operator/migrations.md), as the CRD's transition rules do.",
    )
    autoscaler: AutoscalerStatus | None = Field(
        default=None,
        description="The queue autoscaler's memory across operator restarts (last decision, recent "
        "recommendations); read lastDecision to see why the workers were last scaled.",
    )

    @classmethod
    def from_raw(cls, raw: Any) -> PlatformStatus:
        """The status as stored; an empty one when it is missing or unreadable (a status written
        by hand or by an incompatible version is rebuilt on the next pass, never a crash)."""
        try:
            return cls.model_validate(raw or {})
        except ValidationError:
            return cls()

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)

    def to_patch(self) -> dict[str, Any]:
        """This status as a JSON merge patch of `status`: unset fields are left out, except
        `queue.lastError`, which is always written so that a recovered queue clears it."""
        patch = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if self.queue is not None:
            patch["queue"]["lastError"] = self.queue.last_error
        return patch
