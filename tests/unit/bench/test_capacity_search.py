"""The bench's search for the sustainable rate (bench/capacity_search.py), on synthetic paths."""

from __future__ import annotations

import pytest

from bench.capacity_search import SearchPolicy, Step, found, next_rate

POLICY = SearchPolicy(start=40.0, growth=1.5, steps=8, precision=0.05)


def measured(rate: float, capacity: float) -> Step:
    """A path that keeps p99 within the budget below `capacity` asks/s and queues above it."""
    return Step(
        rate=rate, answered=int(10 * rate), refused=0, errors=0, added_p99_seconds=0.1 if rate <= capacity else 1.5
    )


def search(capacity: float, policy: SearchPolicy = POLICY) -> tuple[float, list[float]]:
    steps: list[Step] = []
    while (rate := next_rate(policy, steps)) is not None:
        steps.append(measured(rate, capacity))
    return found(steps), [s.rate for s in steps]


@pytest.mark.parametrize("capacity", [12.0, 55.0, 63.0, 100.0])
def test_it_brackets_the_capacity_and_bisects_to_within_its_precision(capacity: float) -> None:
    rate, rates = search(capacity)
    assert rate <= capacity
    assert capacity - rate <= POLICY.precision * rate + 1e-9
    assert len(rates) <= POLICY.steps


def test_it_goes_up_while_steps_pass_and_down_while_they_fail() -> None:
    _, up = search(100.0)
    assert up[:3] == [40.0, 60.0, 90.0]
    _, down = search(12.0)
    assert down[:3] == pytest.approx([40.0, 40 / 1.5, 40 / 1.5**2])


def test_it_stops_after_its_steps_with_the_best_rate_that_passed() -> None:
    rate, rates = search(63.0, SearchPolicy(start=40.0, steps=3, precision=0.01))
    assert rates == [40.0, 60.0, 90.0]
    assert rate == 60.0


def test_a_step_with_a_refusal_or_an_error_is_not_sustained_whatever_its_latency() -> None:
    calm = Step(rate=50.0, answered=500, refused=0, errors=0, added_p99_seconds=0.05)
    assert calm.sustained
    refused = Step(rate=50.0, answered=500, refused=1, errors=0, added_p99_seconds=0.05)
    failed = Step(rate=50.0, answered=500, refused=0, errors=2, added_p99_seconds=0.05)
    assert refused.failures() == ["1 refused"]
    assert failed.failures() == ["2 errors"]
    assert Step(rate=50.0, answered=0, refused=0, errors=0, added_p99_seconds=float("inf")).failures() == [
        "nothing answered"
    ]


def test_nothing_sustained_finds_zero_and_never_goes_under_the_least_rate() -> None:
    rate, rates = search(0.0, SearchPolicy(start=4.0, growth=2.0, steps=10, least=1.0))
    assert rate == 0.0
    assert min(rates) == 1.0
    assert rates[-1] == 1.0
