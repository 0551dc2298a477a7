"""The queue-depth autoscaler: examples of each rule, then properties over random queue histories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragplatform_operator.autoscaler import (
    ScalingDecision,
    ScalingPolicy,
    ScalingReason,
    ScalingState,
    decide,
    recommend,
)

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


POLICY = ScalingPolicy(
    min_replicas=1, max_replicas=10, target_per_replica=5, scale_up_window_seconds=0, scale_down_window_seconds=60
)


def test_desired_is_ceil_of_depth_over_target_clamped() -> None:
    assert recommend(POLICY, current=1, queue_depth=0) == 1
    assert recommend(POLICY, current=1, queue_depth=11) == 3
    assert recommend(POLICY, current=1, queue_depth=15) == 3
    assert recommend(POLICY, current=1, queue_depth=10_000) == 10


def test_scales_up_at_once() -> None:
    decision = decide(POLICY, ScalingState(replicas=1), queue_depth=23, now=T0)
    assert decision.replicas == 5
    assert decision.changed
    assert decision.reason == ScalingReason.SCALED_UP
    assert "23" in decision.message


def test_scales_down_only_after_the_window_to_the_peak_of_the_window() -> None:
    state = ScalingState(replicas=8)
    first = decide(POLICY, state, queue_depth=10, now=at(0))  # wants 2
    assert first.replicas == 8
    assert first.reason == ScalingReason.SCALE_DOWN_STABILIZING
    second = decide(POLICY, first.state, queue_depth=20, now=at(30))  # wants 4
    assert second.replicas == 8
    third = decide(POLICY, second.state, queue_depth=0, now=at(60))  # wants 1; window over
    assert third.replicas == 4, "scale down to the highest count wanted within the window"
    assert third.reason == ScalingReason.SCALED_DOWN
    # The lower count wanted at t=60 starts a fresh window.
    assert decide(POLICY, third.state, queue_depth=0, now=at(100)).replicas == 4
    assert decide(POLICY, third.state, queue_depth=0, now=at(120)).replicas == 1


def test_a_spike_inside_the_window_cancels_the_pending_scale_down() -> None:
    pending = decide(POLICY, ScalingState(replicas=6), queue_depth=0, now=at(0)).state
    spike = decide(POLICY, pending, queue_depth=30, now=at(50))
    assert spike.replicas == 6
    assert spike.state.down_since is None
    assert decide(POLICY, spike.state, queue_depth=0, now=at(70)).replicas == 6


def test_scale_up_window_applies_the_lowest_count_wanted_in_it() -> None:
    policy = ScalingPolicy(1, 10, 5, scale_up_window_seconds=30, scale_down_window_seconds=60)
    first = decide(policy, ScalingState(replicas=1), queue_depth=50, now=at(0))
    assert first.replicas == 1
    assert first.reason == ScalingReason.SCALE_UP_STABILIZING
    second = decide(policy, first.state, queue_depth=20, now=at(30))
    assert second.replicas == 4
    assert second.reason == ScalingReason.SCALED_UP


def test_from_zero_only_above_the_activation_threshold() -> None:
    policy = ScalingPolicy(0, 5, 10, activation_queue_depth=3, scale_down_window_seconds=60)
    below = decide(policy, ScalingState(replicas=0), queue_depth=3, now=T0)
    assert below.replicas == 0
    assert below.reason == ScalingReason.BELOW_ACTIVATION
    above = decide(policy, ScalingState(replicas=0), queue_depth=4, now=T0)
    assert above.replicas == 1
    assert above.reason == ScalingReason.SCALED_FROM_ZERO


def test_scales_to_zero_after_the_window() -> None:
    policy = ScalingPolicy(0, 5, 10, scale_down_window_seconds=60)
    pending = decide(policy, ScalingState(replicas=2), queue_depth=0, now=at(0))
    done = decide(policy, pending.state, queue_depth=0, now=at(60))
    assert done.replicas == 0
    assert done.reason == ScalingReason.SCALED_TO_ZERO


def test_narrowed_bounds_apply_at_once() -> None:
    decision = decide(POLICY, ScalingState(replicas=25), queue_depth=1000, now=T0)
    assert decision.replicas == 10
    assert decision.reason == ScalingReason.BOUNDS_CHANGED


def test_invalid_policy_is_refused_with_the_bounds_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"3\.\.2"):
        ScalingPolicy(3, 2, 10)


def test_state_round_trips_through_status() -> None:
    state = ScalingState(replicas=3, down_since=at(5), down_peak=2)
    assert ScalingState.from_status(state.to_status(), default_replicas=1) == state
    assert ScalingState.from_status(None, default_replicas=4) == ScalingState(replicas=4)
    assert ScalingState.from_status({"replicas": "x"}, default_replicas=4) == ScalingState(replicas=4)


# --- properties over random histories -----------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    time: datetime
    depth: int
    decision: ScalingDecision


policies = st.builds(
    lambda lo, span, target, activation, up, down: ScalingPolicy(lo, lo + span, target, activation, up, down),
    st.integers(0, 5),
    st.integers(0, 20),
    st.integers(1, 50),
    st.integers(0, 20),
    st.sampled_from([0, 0, 10, 30]),
    st.sampled_from([0, 15, 60, 300]),
)
histories = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1500)), min_size=1, max_size=60)


def simulate(policy: ScalingPolicy, start: int, history: list[tuple[int, int]]) -> list[Tick]:
    """Feed (seconds since the previous tick, depth) pairs through `decide`, like the operator's timer."""
    state = ScalingState(replicas=start)
    now = T0
    ticks = []
    for step, depth in history:
        now += timedelta(seconds=step)
        decision = decide(policy, state, depth, now)
        ticks.append(Tick(now, depth, decision))
        state = decision.state
    return ticks


@settings(max_examples=150, deadline=None)
@given(policies, st.integers(0, 40), histories)
def test_never_outside_bounds(policy: ScalingPolicy, start: int, history: list[tuple[int, int]]) -> None:
    for tick in simulate(policy, start, history):
        assert policy.min_replicas <= tick.decision.replicas <= policy.max_replicas
        assert tick.decision.state.replicas == tick.decision.replicas


@settings(max_examples=150, deadline=None)
@given(policies, st.integers(0, 25), histories)
def test_never_flaps_inside_the_scale_down_window(
    policy: ScalingPolicy, start: int, history: list[tuple[int, int]]
) -> None:
    start = max(policy.min_replicas, min(policy.max_replicas, start))
    ticks = simulate(policy, start, history)
    window = timedelta(seconds=policy.scale_down_window_seconds)
    last_up: datetime | None = None
    for tick in ticks:
        d = tick.decision
        if d.replicas > d.previous_replicas:
            last_up = tick.time
        if d.replicas < d.previous_replicas and d.reason != ScalingReason.BOUNDS_CHANGED:
            # No scale-down within the window after a scale-up ...
            assert last_up is None or tick.time - last_up >= window
            # ... nor below any count the queue asked for within the window.
            for earlier in ticks:
                if tick.time - window < earlier.time <= tick.time:
                    assert earlier.decision.recommendation <= d.replicas


@settings(max_examples=150, deadline=None)
@given(policies, histories)
def test_scales_from_zero_only_past_the_activation_threshold(
    policy: ScalingPolicy, history: list[tuple[int, int]]
) -> None:
    if policy.min_replicas != 0:
        return
    for tick in simulate(policy, 0, history):
        d = tick.decision
        if d.previous_replicas == 0 and d.replicas > 0:
            assert tick.depth > policy.activation_queue_depth
        wakes = tick.depth > policy.activation_queue_depth and not policy.scale_up_window_seconds
        if d.previous_replicas == 0 and wakes and policy.max_replicas > 0:
            assert d.replicas > 0, "a queue above the threshold wakes the workers at once"


@settings(max_examples=150, deadline=None)
@given(policies, st.integers(0, 25), st.integers(0, 1500))
def test_scale_up_without_a_window_goes_straight_to_the_recommendation(
    policy: ScalingPolicy, start: int, depth: int
) -> None:
    start = max(policy.min_replicas, min(policy.max_replicas, start))
    if policy.scale_up_window_seconds:
        return
    decision = decide(policy, ScalingState(replicas=start), depth, T0)
    if decision.recommendation > start:
        assert decision.replicas == decision.recommendation
