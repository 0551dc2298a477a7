"""The event-loop lag sampler: the short period while busy, the long one while the caller says idle."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from itertools import pairwise
from typing import Any, cast

import pytest

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from ragplatform.core.loop_lag import sample_loop_lag

PERIOD = 0.01
IDLE_PERIOD = 0.15


async def sampled_waits(idle_answers: list[bool]) -> list[float]:
    """Run the sampler for one sample more than `idle_answers` (the idle predicate's answers, in
    order) and return how long it waited before each sample after the first: the time between two
    samples less the second's lag, so a slow machine (which shows as lag) does not change it."""
    samples: list[tuple[float, float]] = []
    answers = iter(idle_answers)
    done = asyncio.Event()

    def on_sample(now: float, lag: float) -> None:
        samples.append((now, lag))
        if len(samples) == len(idle_answers) + 1:
            done.set()

    sampler = asyncio.create_task(
        sample_loop_lag(on_sample, period=PERIOD, idle=lambda lag: next(answers, False), idle_period=IDLE_PERIOD)
    )
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        sampler.cancel()
    return [now - before - lag for (before, _), (now, lag) in pairwise(samples)]


async def test_an_idle_process_is_sampled_less_often_until_it_is_busy_again() -> None:
    waits = await sampled_waits([False, True, True, False, False])
    busy = [waits[0], waits[3], waits[4]]
    idle = [waits[1], waits[2]]
    assert all(wait >= IDLE_PERIOD * 0.9 for wait in idle), waits
    # Well under the idle period (only a stall between two lines of the sampler could add to it).
    assert all(wait < IDLE_PERIOD / 2 for wait in busy), waits


async def test_admission_lets_the_sampler_idle_only_without_calls_and_below_its_thresholds() -> None:
    admission = AdmissionInterceptor(
        "retrieval", LimitPolicy(ceiling=10, lag_target_seconds=0.25, mark_lag_seconds=0.02), 1.0
    )
    assert admission.idle(0.001)
    assert not admission.idle(0.03)  # over the mark's threshold, though under the lag target
    async with admission.scope("/ragplatform.v1.RetrievalService/Search", cast(Any, None)):
        assert not admission.idle(0.001)  # a call in flight
    assert admission.idle(0.001)
    admission.state = replace(admission.state, congested=True)
    assert not admission.idle(0.001)  # its answers are marked until a sample clears it


def test_without_thresholds_only_calls_in_flight_keep_the_short_period() -> None:
    admission = AdmissionInterceptor("gateway", LimitPolicy(ceiling=10, lag_target_seconds=0), 1.0)
    assert admission.idle(5.0)


async def test_an_error_in_a_sample_ends_the_sampler_with_it() -> None:
    def on_sample(now: float, lag: float) -> None:
        raise ValueError("broken sample")

    with pytest.raises(ValueError, match="broken sample"):
        await asyncio.wait_for(sample_loop_lag(on_sample, period=PERIOD), timeout=30)
