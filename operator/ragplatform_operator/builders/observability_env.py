"""The OTEL_* variables of a tier's container, from `spec.observability.tracing`.

These are the OpenTelemetry SDK's standard variables, read by the services' tracing setup
(`ragplatform.core.tracing`); with no `tracing` block none is rendered and tracing stays off.
"""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders.metadata import Owner
from ragplatform_operator.spec import SERVICE_BY_TIER, PlatformSpec, TierName


def build_observability_env(owner: Owner, spec: PlatformSpec, tier: TierName) -> list[dict[str, Any]]:
    """OTEL_* variables for `tier` (empty when tracing is not configured)."""
    tracing = spec.observability.tracing
    if tracing is None:
        return []
    attributes = {
        "service.namespace": owner.name,
        "k8s.namespace.name": owner.namespace,
        **(tracing.resource_attributes or {}),
    }
    env: list[dict[str, Any]] = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": tracing.otlp_endpoint},
        {"name": "OTEL_EXPORTER_OTLP_INSECURE", "value": str(tracing.insecure).lower()},
        {"name": "OTEL_SERVICE_NAME", "value": f"ragplatform-{SERVICE_BY_TIER[tier]}"},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": ",".join(f"{k}={v}" for k, v in attributes.items())},
        {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": f"{tracing.sampling_ratio:g}"},
    ]
    if tracing.headers_secret_ref is not None:
        ref = tracing.headers_secret_ref
        env.append(
            {
                "name": "OTEL_EXPORTER_OTLP_HEADERS",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    return env
