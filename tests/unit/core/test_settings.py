import math
import random
from collections import Counter

import pytest

from ragplatform.core.server import build_admission
from ragplatform.core.settings import (
    ASK_ADDED_LATENCY_SLO_SECONDS,
    DEFAULT_MAX_IN_FLIGHT,
    GATEWAY_ADMISSION_PACE_SECONDS,
    GATEWAY_MAX_IN_FLIGHT,
    GATEWAY_SIZING_MODEL_SECONDS,
    GATEWAY_SUSTAINABLE_ASKS_PER_SECOND,
    SETTINGS_BY_SERVICE,
    GatewaySettings,
    RetrievalSettings,
    SettingsError,
    StoreSettings,
    WorkerSettings,
    admission_burst_for,
    ceiling_for,
    env_var_names,
    load_settings,
)
from ragplatform.domain.gcra import gcra
from ragplatform.gateway.app import build_app


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    for cls in SETTINGS_BY_SERVICE.values():
        load_settings(cls)


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_GRPC_PORT", "6000")
    monkeypatch.setenv("RAG_RATE_LIMIT_RPS", "2.5")
    settings = load_settings(GatewaySettings)
    assert settings.grpc_port == 6000
    assert settings.rate_limit_rps == 2.5


def test_every_bad_variable_is_named_with_what_it_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_GRPC_PORT", "seventy")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "2")
    monkeypatch.setenv("RAG_EMBEDDER", "word2vec")
    with pytest.raises(SettingsError) as info:
        load_settings(WorkerSettings)
    message = str(info.value)
    assert "RAG_GRPC_PORT='seventy'" in message
    assert "RAG_CHUNK_TOKENS='2'" in message
    assert "RAG_EMBEDDER='word2vec'" in message
    assert "minilm" in message  # says what is accepted
    assert "docs/configuration.md" in message


def test_store_url_scheme_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_STORE_URL", "mysql://db/rag")
    with pytest.raises(SettingsError, match="RAG_STORE_URL"):
        load_settings(StoreSettings)


def test_env_var_names_lists_what_a_service_reads() -> None:
    names = env_var_names(WorkerSettings)
    assert {"RAG_QUEUE_URL", "RAG_EMBEDDER", "RAG_RETRIEVAL_ADDR", "RAG_GRPC_PORT"} <= names
    assert "RAG_LLM_URL" not in names


def test_chunk_overlap_must_be_smaller_than_the_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "64")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP_TOKENS", "64")
    with pytest.raises(SettingsError) as info:
        load_settings(WorkerSettings)
    assert "RAG_CHUNK_OVERLAP_TOKENS (64) must be smaller than RAG_CHUNK_TOKENS (64)" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAG_STORE_URL", "postgresql://rag:hunter2@db:abc/rag"),
        ("RAG_QUEUE_URL", "redis://redis:99999/0"),
        ("RAG_VECTOR_URL", "http://qdrant:six/"),
    ],
)
def test_a_url_with_a_bad_port_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}=.*port after the host must be a number"):
        load_settings(WorkerSettings if variable != "RAG_VECTOR_URL" else RetrievalSettings)


def test_urls_with_good_or_no_ports_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_STORE_URL", "postgresql://rag@db:6432/rag")
    monkeypatch.setenv("RAG_QUEUE_URL", "redis://redis/0")
    assert load_settings(WorkerSettings).store_url == "postgresql://rag@db:6432/rag"


def test_the_model_cache_defaults_to_the_data_dir_and_can_be_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    monkeypatch.delenv("RAG_MODEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("RAG_DATA_DIR", "/srv/rag")
    assert load_settings(RetrievalSettings).model_cache == Path("/srv/rag/model-cache")
    monkeypatch.setenv("RAG_MODEL_CACHE_DIR", "/var/cache/models")
    assert load_settings(WorkerSettings).model_cache == Path("/var/cache/models")


def _poisson_tail(mean: float, above: int) -> float:
    """P(N > above) for N ~ Poisson(mean): how often random arrivals at a steady rate hold more calls."""
    at_most = sum(math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) for k in range(above + 1))
    return 1.0 - at_most


def test_the_gateway_ceiling_holds_the_bursts_of_its_sustainable_rate_and_little_more() -> None:
    in_flight = GATEWAY_SUSTAINABLE_ASKS_PER_SECOND * (GATEWAY_SIZING_MODEL_SECONDS + ASK_ADDED_LATENCY_SLO_SECONDS)

    # the mean alone (Little's law) is exceeded about half the time: it would refuse a sustainable load
    assert _poisson_tail(in_flight, round(in_flight)) > 0.4
    # the default is exceeded rarely at that rate, and stays far under the old fixed 256
    assert _poisson_tail(in_flight, GATEWAY_MAX_IN_FLIGHT) < 0.03
    assert GATEWAY_MAX_IN_FLIGHT < 1.25 * in_flight < DEFAULT_MAX_IN_FLIGHT


def _gateway_rate() -> tuple[float, int]:
    """The gateway's default admission rate while its limit is at the ceiling, and its burst."""
    settings = load_settings(GatewaySettings)
    rate = build_admission(build_app(settings), settings).rate
    assert rate is not None
    assert rate.burst == admission_burst_for(GATEWAY_MAX_IN_FLIGHT)
    return rate.per_second(GATEWAY_MAX_IN_FLIGHT), rate.burst


def _paced(arrivals_per_second: float, seconds: float, seed: int) -> tuple[list[float], int]:
    """Random (Poisson) arrivals at a steady rate through the gateway's default admission rate:
    the times admitted, and how many were refused."""
    per_second, burst = _gateway_rate()
    rng, now, tat = random.Random(seed), 0.0, None
    admitted: list[float] = []
    refused = 0
    while (now := now + rng.expovariate(arrivals_per_second)) < seconds:
        decision = gcra(tat, now, per_second, burst)
        if decision.retry_after > 0:
            refused += 1
        else:
            tat = decision.new_tat
            admitted.append(now)
    return admitted, refused


def test_the_gateway_admission_rate_passes_its_sustainable_rate_and_spreads_an_overload() -> None:
    """At the sustainable rate (five simulated minutes each, several seeds) the gateway's pace
    refuses next to nothing; at 3x it admits what the ceiling turns over within the SLO, never in
    a wave: no quarter of a second admits more than a quarter second's rate and the burst."""
    per_second, burst = _gateway_rate()
    refused = sum(_paced(GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, 300, seed)[1] for seed in range(4))
    assert refused < 0.0005 * 4 * 300 * GATEWAY_SUSTAINABLE_ASKS_PER_SECOND
    admitted, _ = _paced(3 * GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, 60, seed=7)
    turnover = GATEWAY_MAX_IN_FLIGHT / (GATEWAY_SIZING_MODEL_SECONDS + ASK_ADDED_LATENCY_SLO_SECONDS)
    assert turnover * 0.98 < len(admitted) / 60 <= turnover * 1.01
    per_quarter = Counter(int(t * 4) for t in admitted)
    assert max(per_quarter.values()) <= per_second / 4 + burst + 1


def test_only_the_gateway_paces_its_admissions_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(GatewaySettings).admission_pace_seconds == GATEWAY_ADMISSION_PACE_SECONDS
    others = {
        load_settings(cls).admission_pace_seconds for name, cls in SETTINGS_BY_SERVICE.items() if name != "gateway"
    }
    assert others == {0}
    default_rate = _gateway_rate()[0]
    monkeypatch.setenv("RAG_ADMISSION_PACE_SECONDS", "0")
    settings = load_settings(GatewaySettings)
    assert build_admission(build_app(settings), settings).rate is None  # no pace, no rate
    # A ceiling raised for a faster core raises the rate with it.
    monkeypatch.setenv("RAG_ADMISSION_PACE_SECONDS", str(GATEWAY_ADMISSION_PACE_SECONDS))
    monkeypatch.setenv("RAG_MAX_IN_FLIGHT", "316")
    settings = load_settings(GatewaySettings)
    admission = build_admission(build_app(settings), settings)
    assert admission.rate is not None
    assert admission.rate.per_second(admission.limit) == pytest.approx(2 * default_rate)


def test_a_slower_model_or_a_faster_core_needs_a_higher_ceiling() -> None:
    base = ceiling_for(GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, GATEWAY_SIZING_MODEL_SECONDS)

    assert ceiling_for(GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, 10.0) > 4 * base
    assert ceiling_for(2 * GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, GATEWAY_SIZING_MODEL_SECONDS) > 1.9 * base


def test_only_the_gateway_defaults_to_the_ceiling_from_its_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(GatewaySettings).max_in_flight == GATEWAY_MAX_IN_FLIGHT
    assert {load_settings(cls).max_in_flight for name, cls in SETTINGS_BY_SERVICE.items() if name != "gateway"} == {
        DEFAULT_MAX_IN_FLIGHT
    }
    monkeypatch.setenv("RAG_MAX_IN_FLIGHT", "400")
    assert load_settings(GatewaySettings).max_in_flight == 400
