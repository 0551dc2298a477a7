"""Fuzz the gateway of a platform running as separate processes (embedded backends): a few
hundred hypothesis cases over every GatewayService method, odd values and raw bytes, with valid,
missing and wrong keys. No call may end INTERNAL, UNKNOWN or without a status before its deadline,
and the gateway must still be SERVING afterwards. `bench/fuzz_gateway.py` runs 10k+ of the same."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.gateway_fuzz import FUZZ_ENV, Outcome, fuzz
from tests.support.platform_processes import PlatformProcesses

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformProcesses, str]]:
    processes = PlatformProcesses(Path(tmp_path_factory.mktemp("fuzz")), extra_env=FUZZ_ENV)
    try:
        processes.start_all()
        yield processes, processes.create_api_key("fuzz")
    finally:
        processes.stop_all()


@pytest.mark.timeout(600)
def test_no_gateway_call_ends_internal_unknown_or_without_a_status(platform: tuple[PlatformProcesses, str]) -> None:
    processes, key = platform
    outcome = Outcome({}, [])
    with grpc.insecure_channel(processes.gateway) as channel:
        fuzz(channel, key, EXAMPLES, outcome, stop_at_first=True)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(outcome.counts.values()) >= EXAMPLES
    # The cases reach past authentication and validation, not only bounce off them.
    assert outcome.counts.get("OK", 0) > 0
    assert outcome.counts.get("INVALID_ARGUMENT", 0) > 0
    assert outcome.counts.get("UNAUTHENTICATED", 0) > 0
    for service in processes.processes:
        assert "Traceback" not in processes.log_text(service), service
