"""The CPU weights the operator's default CPU requests give the services' pods, as the niceness of
each service's threads on the bench's one shared service CPU.

In a cluster each pod's CPU request becomes its cgroup's `cpu.weight` (proportional to the
request), which decides how a busy node's CPU is shared; on the bench, six processes share one
CPU with equal weights unless told otherwise. A nice step is a factor of 1.25 in the Linux
scheduler's weight (nice 0 = 1024), so a request r times the smallest one becomes niceness
-round(log(r) / log(1.25)): with the defaults (gateway and retrieval 250m, generation, conversation
and ingestion 100m, workers 500m) the gateway and retrieval run at -4 (2.44x), the worker at -7.
"""

from __future__ import annotations

import math

from kubernetes.utils import parse_quantity

from ragplatform_operator.builders.deployment import DEFAULT_RESOURCES

# The operator's tier of each service process of the bench.
TIER_OF_SERVICE = {
    "gateway": "gateway",
    "ingestion": "ingestion",
    "ingestion-worker": "workers",
    "retrieval": "retrieval",
    "generation": "generation",
    "conversation": "conversation",
}
NICE_STEP = 1.25


def niceness_from_requests(requests: dict[str, float]) -> dict[str, int]:
    """Each service's niceness, so that the scheduler's weights are in the ratio of `requests`
    (CPU, any unit; the smallest request at nice 0)."""
    least = min(requests.values())
    return {service: -round(math.log(cpu / least) / math.log(NICE_STEP)) for service, cpu in requests.items()}


def operator_niceness() -> dict[str, int]:
    """Each service's niceness from the operator's default CPU requests."""
    requests = {service: DEFAULT_RESOURCES[tier]["requests"]["cpu"] for service, tier in TIER_OF_SERVICE.items()}
    cores = {service: float(parse_quantity(cpu)) for service, cpu in requests.items()}  # type: ignore[no-untyped-call]
    return niceness_from_requests(cores)
