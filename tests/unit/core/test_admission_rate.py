"""The admission rate (RAG_ADMISSION_PACE_SECONDS) inside admission control, driven directly: a
quiet process admits its burst at once and then the rate; a process refusing at its limit keeps
no burst, so the slots that free up together refill at the rate, not in a wave; a cut limit slows
the rate with it. (Through real gRPC: tests/integration/core/test_admission.py.) At the gateway
only Asks are paced."""

from __future__ import annotations

import dataclasses

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.interceptors.admission import AdmissionInterceptor, AdmissionRate
from ragplatform.core.server import build_admission
from ragplatform.core.settings import GatewaySettings, load_settings
from ragplatform.gateway.app import ASK_METHOD, build_app

METHOD = "/ragplatform.v1.GenerationService/Generate"


def paced(burst: int) -> AdmissionInterceptor:
    """Two calls at once at most (a fixed limit), admitted once per 4 s (one every 2 s), `burst` at once."""
    policy = LimitPolicy(ceiling=2, lag_target_seconds=0)
    return AdmissionInterceptor("generation", policy, 1.0, AdmissionRate(pace_seconds=4.0, burst=burst))


def test_a_quiet_process_admits_its_burst_at_once_then_the_rate() -> None:
    admission = paced(burst=3)

    # (the calls are decided, not served: none is in flight, so only the rate can refuse)
    assert [admission.early_refusal(METHOD) for _ in range(3)] == [None, None, None]
    refusal = admission.early_refusal(METHOD)
    assert refusal is not None
    assert "0.5 calls a second at most" in refusal.message
    assert refusal.retry_after_seconds == 1.0


def test_a_refusal_at_the_limit_leaves_no_burst_for_the_slots_that_free_up_together() -> None:
    admission = paced(burst=3)
    admission.in_flight = 2  # at its limit of 2 ...
    refusal = admission.early_refusal(METHOD)
    assert refusal is not None
    assert "calls in flight" in refusal.message
    admission.in_flight = 0  # ... then both calls end together

    assert admission.early_refusal(METHOD) is None  # one slot refills at once ...
    refusal = admission.early_refusal(METHOD)
    assert refusal is not None  # ... the other at the rate, not from a burst saved while saturated
    assert "calls a second at most" in refusal.message


def test_a_cut_limit_slows_the_rate_with_it() -> None:
    """The pace is the limit's calls per call time: a limit the budget or the lag cut to what the
    path holds in time admits fewer calls a second too, not the ceiling's rate into a smaller limit."""
    policy = LimitPolicy(ceiling=10, lag_target_seconds=0)
    admission = AdmissionInterceptor("gateway", policy, 1.0, AdmissionRate(pace_seconds=10.0, burst=1))
    assert admission.early_refusal(METHOD) is None
    refusal = admission.early_refusal(METHOD)
    assert refusal is not None
    assert "admitting 1 calls a second at most" in refusal.message

    admission.state = dataclasses.replace(admission.state, limit=5.0)
    refusal = admission.early_refusal(METHOD)
    assert refusal is not None
    assert "admitting 0.5 calls a second at most" in refusal.message


def test_only_the_paced_methods_count_against_the_rate() -> None:
    """At the gateway the pace is an Ask's time: uploads and reads neither wait for it nor spend it."""
    ask, upload = "/ragplatform.v1.GatewayService/Ask", "/ragplatform.v1.GatewayService/Ingest"
    policy = LimitPolicy(ceiling=2, lag_target_seconds=0)
    rate = AdmissionRate(pace_seconds=4.0, burst=1, methods=frozenset({ask}))
    admission = AdmissionInterceptor("gateway", policy, 1.0, rate)

    assert [admission.early_refusal(upload) for _ in range(5)] == [None] * 5
    assert admission.early_refusal(ask) is None  # the uploads spent none of the burst
    refusal = admission.early_refusal(ask)
    assert refusal is not None
    assert "calls a second at most" in refusal.message
    assert admission.early_refusal(upload) is None  # an upload is still admitted


def test_the_gateway_paces_its_asks_only() -> None:
    settings = load_settings(GatewaySettings)
    admission = build_admission(build_app(settings), settings)
    assert admission.rate is not None
    assert admission.rate.methods == frozenset({ASK_METHOD})
    assert ASK_METHOD == "/ragplatform.v1.GatewayService/Ask"  # the path gRPC calls it by
