"""The circuit breaker's state machine, driven by a fake clock (the breaker never reads time
itself, so a settable number is the real thing here, not a mock)."""

from __future__ import annotations

import pytest

from ragplatform.backends.llms.circuit_breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> BreakerState:
    # A function call, so the type checker does not narrow the state between assertions.
    return breaker.state


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_stays_closed_below_the_threshold_and_successes_reset_the_count(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_opens_after_consecutive_failures_and_fails_fast(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 4
    assert breaker.retry_after() == pytest.approx(6)
    assert not breaker.allow()


def test_after_cooldown_one_trial_call_goes_through(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "only one trial while half-open"
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_failed_trial_reopens_for_a_full_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    breaker.record_failure()  # one failure suffices in half-open
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(10)
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()


def test_released_trial_lets_another_caller_try(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, -1.0)])
def test_rejects_nonsense_configuration(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker(failure_threshold=threshold, cooldown_seconds=cooldown)
