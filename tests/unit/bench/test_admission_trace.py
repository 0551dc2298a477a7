"""The bench's admission trace (bench/admission_trace.py) against a real metrics server: its
filtered scrape still reads every family it samples, and renders only those."""

from __future__ import annotations

import urllib.request

from bench.admission_trace import _QUERY, FAMILIES, AdmissionTrace
from ragplatform.core.metrics import (
    ADMISSION_CUTS,
    ADMISSION_IN_FLIGHT,
    ADMISSION_LIMIT,
    GRPC_HANDLED,
    GRPC_REFUSED,
    start_metrics_server,
)


def test_the_filtered_scrape_reads_limit_in_flight_refusals_and_cuts() -> None:
    port = start_metrics_server("127.0.0.1", 0)
    ADMISSION_LIMIT.labels("gateway").set(158)
    ADMISSION_IN_FLIGHT.labels("gateway").set(42)
    refused = GRPC_REFUSED.labels("gateway", "/ragplatform.v1.GatewayService/Ask")
    cuts = ADMISSION_CUTS.labels("gateway", "lag")
    before = AdmissionTrace(port)._scrape()
    assert before is not None
    refused.inc(3)
    cuts.inc(2)
    after = AdmissionTrace(port)._scrape()
    assert after is not None
    assert (after.limit, after.in_flight) == (158, 42)
    assert after.refused - before.refused == 3
    assert after.cuts["lag"] - before.cuts.get("lag", 0) == 2


def test_the_filtered_scrape_renders_only_the_families_it_reads() -> None:
    port = start_metrics_server("127.0.0.1", 0)
    GRPC_HANDLED.labels("/ragplatform.v1.GatewayService/Ask", "OK").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?{_QUERY}", timeout=5) as reply:
        text = reply.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        whole = reply.read().decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names
    assert names <= set(FAMILIES)
    assert "ragplatform_grpc_server_handled_total" in whole
    assert "ragplatform_grpc_server_handled_total" not in text
