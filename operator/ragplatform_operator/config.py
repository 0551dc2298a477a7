"""The operator's own settings, read once from `RAGPLATFORM_OPERATOR_*` environment variables.

(The services' `RAG_*` variables are a different contract: the operator renders those.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorConfig(BaseSettings):
    """How the operator runs. Every field has a default that suits a real cluster."""

    model_config = SettingsConfigDict(env_prefix="RAGPLATFORM_OPERATOR_", frozen=True)

    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list, e.g. '[\"rag\"]'); empty: the whole cluster.",
    )
    reconcile_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often every RagPlatform is re-applied to repair drift (a backstop: "
        "children are watched, and a deleted or edited one is repaired at once).",
    )
    autoscale_tick_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the autoscaler wakes up; each platform's queue is read at its own "
        "spec.workers.autoscaling.pollingIntervalSeconds, never more often than this.",
    )
    liveness_endpoint: str | None = Field(
        default="http://0.0.0.0:8080/healthz", description="kopf's liveness endpoint; empty: none."
    )
    log_format: Literal["json", "plain", "full"] = Field(default="json", description="Log line format.")
    verbose: bool = Field(default=False, description="Log at debug level.")
    watch_server_timeout_seconds: int = Field(
        default=300, gt=0, description="Server-side timeout of each watch request (reconnects after)."
    )
    watch_client_timeout_seconds: int = Field(
        default=330, gt=0, description="Client-side timeout of each watch request, in case the server hangs."
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of kopf's other API requests.")
