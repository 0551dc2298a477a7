"""The adaptive admission limit (core/adaptive_limit.py): how it moves on event-loop lag samples."""

from __future__ import annotations

from dataclasses import replace

from ragplatform.core.adaptive_limit import (
    LimitPolicy,
    LimitState,
    admits,
    initial_state,
    observe_lag,
    observe_latency,
    refused,
    upstream_refused,
)

POLICY = LimitPolicy(ceiling=100, lag_target_seconds=0.01, floor=4, interval_seconds=0.1, hold_seconds=1.0)


def run(state: LimitState, lags: list[float], in_flight: int, start: float, step: float = 0.025) -> LimitState:
    """Feed one lag sample every `step` seconds from `start`."""
    for i, lag in enumerate(lags):
        state = observe_lag(POLICY, state, start + (i + 1) * step, lag, in_flight)
    return state


def test_it_starts_at_the_ceiling_and_admits_up_to_it() -> None:
    state = initial_state(POLICY, now=0.0)
    assert state.limit == 100
    assert admits(state, 99)
    assert not admits(state, 100)


def test_a_standing_lag_cuts_the_limit_to_a_share_of_the_calls_in_flight() -> None:
    state = run(initial_state(POLICY, 0.0), [0.05] * 4, in_flight=60, start=0.0)
    assert state.limit == 54  # 0.9 x 60 in flight, not 0.9 x the ceiling nobody reached
    assert not admits(state, 54)
    assert state.cut_by == "lag"


def test_a_burst_is_not_overload_only_the_smallest_lag_of_an_interval_counts() -> None:
    # One slow callback (0.5 s of lag) among quick ones: the loop cleared it, nothing is cut.
    state = run(initial_state(POLICY, 0.0), [0.5, 0.001, 0.5, 0.5, 0.5], in_flight=60, start=0.0)
    assert state.limit == 100


def test_one_stall_is_not_overload_the_interval_waits_for_enough_samples() -> None:
    # The process was descheduled for 0.3 s: one late sample, then the loop keeps up again.
    state = observe_lag(POLICY, initial_state(POLICY, 0.0), 0.325, 0.3, in_flight=60)
    state = run(state, [0.001, 0.001], in_flight=60, start=0.325)
    assert state.limit == 100
    # A loop that stays late is judged once it has given enough samples, however slowly.
    state = initial_state(POLICY, 0.0)
    for i in range(3):
        state = observe_lag(POLICY, state, 0.2 * (i + 1), 0.175, in_flight=60)
    assert state.limit == 54


def test_after_a_cut_it_holds_before_cutting_again() -> None:
    state = run(initial_state(POLICY, 0.0), [0.05] * 4, in_flight=60, start=0.0)
    assert state.limit == 54
    # Still lagging for the next 0.5 s (the calls admitted before the cut still run): no cut.
    state = run(state, [0.05] * 20, in_flight=54, start=0.1)
    assert state.limit == 54
    # Still lagging after the hold: cut again.
    state = run(state, [0.05] * 24, in_flight=54, start=0.6)
    assert 48 <= state.limit < 54


def test_it_never_falls_below_the_floor() -> None:
    state = LimitState(limit=5.0, interval_began=0.0)
    state = run(state, [1.0] * 8, in_flight=2, start=0.0)
    assert state.limit == POLICY.floor
    assert admits(state, POLICY.floor - 1)


def test_it_climbs_back_only_while_calls_are_held_back_and_the_loop_keeps_up() -> None:
    low = LimitState(limit=50.0, interval_began=0.0, last_cut=0.0)  # just cut
    # Nobody refused: a limit nobody reaches is not raised.
    assert run(low, [0.001] * 8, in_flight=10, start=0.0).limit == 50
    # Calls refused and no lag: raised by 2 % (at least one call) each interval, so soon after a cut.
    state = refused(low)
    state = run(state, [0.001] * 4, in_flight=50, start=0.0)
    assert state.limit == 51
    assert not state.held_back  # a new interval began
    # Refused, but the loop lags: not raised.
    state = run(refused(state), [0.02] * 4, in_flight=51, start=0.1)
    assert state.limit <= 51


def test_long_after_the_last_cut_it_climbs_back_fast() -> None:
    """A limit left low by a past overload reaches a normal load's need within about a second."""
    state = LimitState(limit=50.0, interval_began=0.0, last_cut=-3.0)  # cut 3 s ago
    state = run(refused(state), [0.001] * 4, in_flight=50, start=0.0)
    assert state.limit == 55  # 10 %, not 2 %
    for interval in range(1, 11):
        state = run(refused(state), [0.001] * 4, in_flight=int(state.limit), start=0.1 * interval)
    assert state.limit == 100  # the ceiling, within a second (at 2 % it would be at ~62)


def test_it_never_climbs_above_the_ceiling() -> None:
    state = LimitState(limit=99.5, interval_began=0.0)
    for i in range(5):
        state = run(refused(state), [0.0] * 4, in_flight=99, start=i * 0.1)
    assert state.limit == POLICY.ceiling


def test_without_a_lag_target_the_limit_is_fixed() -> None:
    fixed = LimitPolicy(ceiling=100, lag_target_seconds=0.0)
    state = initial_state(fixed, 0.0)
    for i in range(10):
        state = observe_lag(fixed, state, 0.1 * (i + 1), 5.0, in_flight=100)
    assert state.limit == 100


def test_a_ceiling_below_the_floor_is_kept() -> None:
    tiny = LimitPolicy(ceiling=2, lag_target_seconds=0.01, floor=4)
    state = initial_state(tiny, 0.0)
    for i in range(8):
        state = observe_lag(tiny, state, 0.025 * (i + 1), 1.0, in_flight=2)
    assert state.limit == 2


def test_a_refusal_upstream_cuts_like_a_standing_lag_and_respects_the_hold() -> None:
    state = upstream_refused(POLICY, initial_state(POLICY, 0.0), now=5.0, in_flight=40)
    assert state.limit == 36
    assert state.cut_by == "upstream"
    assert upstream_refused(POLICY, state, now=5.5, in_flight=36).limit == 36  # within the hold
    assert upstream_refused(POLICY, state, now=6.0, in_flight=36).limit < 36
    fixed = LimitPolicy(ceiling=100, lag_target_seconds=0.0)
    assert upstream_refused(fixed, initial_state(fixed, 0.0), now=5.0, in_flight=40).limit == 100


def test_a_standing_lag_over_the_mark_threshold_marks_the_process_congested() -> None:
    marking = LimitPolicy(ceiling=100, lag_target_seconds=0.25, mark_lag_seconds=0.02)
    state = initial_state(marking, 0.0)
    for i in range(4):
        state = observe_lag(marking, state, 0.025 * (i + 1), 0.03, in_flight=10)
    assert state.congested
    assert state.limit == 100  # marked, not cut: the lag is under this process's own target
    for i in range(4):
        state = observe_lag(marking, state, 0.1 + 0.025 * (i + 1), 0.001, in_flight=10)
    assert not state.congested


LATENCY_POLICY = replace(POLICY, latency_target_seconds=0.05)


def one_interval(state: LimitState, latencies: list[float], in_flight: int, start: float) -> LimitState:
    """The work latencies reported during one interval (no loop lag), then the lag samples that end it."""
    for latency in latencies:
        state = observe_latency(state, latency)
    for i in range(4):
        state = observe_lag(LATENCY_POLICY, state, start + (i + 1) * 0.025, 0.001, in_flight)
    return state


def test_a_standing_work_latency_cuts_the_limit_though_the_loop_keeps_up() -> None:
    state = initial_state(LATENCY_POLICY, 0.0)
    state = one_interval(state, [0.2, 0.3, 0.25], in_flight=60, start=0.0)
    assert state.limit == 54  # 90 % of the 60 in flight
    assert state.cut_by == "latency"


def test_one_fast_call_in_the_interval_means_the_path_is_not_saturated() -> None:
    state = initial_state(LATENCY_POLICY, 0.0)
    state = one_interval(state, [0.2, 0.01, 0.3], in_flight=60, start=0.0)
    assert state.limit == 100


def test_too_few_latencies_in_an_interval_are_not_judged() -> None:
    state = initial_state(LATENCY_POLICY, 0.0)
    state = one_interval(state, [0.5, 0.5], in_flight=60, start=0.0)
    assert state.limit == 100
    # ... and they do not carry over into the next interval.
    state = one_interval(state, [0.5], in_flight=60, start=0.1)
    assert state.limit == 100


def test_a_slow_path_is_not_given_more_calls_while_calls_are_held_back() -> None:
    low = refused(LimitState(limit=50.0, interval_began=0.0, last_cut=-1.5))  # past the hold, not quiet
    assert one_interval(low, [0.01] * 3, in_flight=50, start=0.0).limit == 51  # fast: raised
    assert one_interval(low, [0.2] * 3, in_flight=50, start=0.0).limit == 45  # slow: cut


def test_without_a_latency_target_latency_is_not_judged() -> None:
    state = observe_latency(initial_state(POLICY, 0.0), 5.0)
    for _ in range(3):
        state = observe_latency(state, 5.0)
    assert run(state, [0.001] * 4, in_flight=60, start=0.0).limit == 100
