"""The Ask's latency budget (core/latency_budget.py): what recent answers say about the limit — the
queueing in their share over the no-load share, and the gradient that would remove it."""

from __future__ import annotations

import pytest

from ragplatform.core.latency_budget import Answer, LatencyBudget, judge, noload_seen, raise_step, recent

BUDGET = LatencyBudget(target_seconds=0.25, quantile=0.9, window_seconds=2.0, min_answers=10)
MEDIAN = LatencyBudget(target_seconds=0.1)  # the default's shape: the median's queueing, 100 ms


def answers(count: int, until: float, every: float, share: float, model: float = 2.0) -> list[Answer]:
    """`count` answers, one every `every` seconds up to `until`, each with this share of the platform."""
    done = [until - i * every for i in reversed(range(count))]
    return [Answer(admitted_at=d - model - share, done_at=d, model_seconds=model) for d in done]


def test_the_share_is_what_the_answer_took_beyond_the_model() -> None:
    assert Answer(admitted_at=1.0, done_at=3.3, model_seconds=2.0).share == pytest.approx(0.3)
    assert Answer(admitted_at=1.0, done_at=2.5, model_seconds=2.0).share == 0  # never negative


def test_recent_keeps_the_window_or_at_least_the_last_few() -> None:
    kept = recent(BUDGET, answers(100, until=10.0, every=0.05, share=0.1), now=10.0)
    assert len(kept) == 41  # finished in [8, 10]
    trickle = answers(12, until=10.0, every=1.0, share=0.1)
    assert recent(BUDGET, trickle, now=10.0) == tuple(trickle[-10:])


def test_the_verdict_is_a_high_quantile_of_the_share_not_the_best_answer() -> None:
    mixed = answers(70, until=10.0, every=0.025, share=0.02) + answers(10, until=10.0, every=0.1, share=0.6)
    verdict = judge(BUDGET, mixed, now=10.0, since=0.0)
    assert verdict is not None
    assert verdict.share == pytest.approx(0.6)  # 1 answer in 8 took 0.6 s: p90 is over budget
    assert verdict.over(BUDGET)


def test_the_gradient_is_what_brings_the_queueing_back_to_half_the_budget_at_the_same_rate() -> None:
    # 50 answers/s, each 1 s of share, on a path whose share with no queue is 40 ms (seen earlier).
    verdict = judge(MEDIAN, answers(100, until=10.0, every=0.02, share=1.0), now=10.0, since=0.0, noload=((5, 0.04),))
    assert verdict is not None
    assert verdict.rate == pytest.approx(50.0)
    assert verdict.model_seconds == pytest.approx(2.0)
    assert verdict.noload == pytest.approx(0.04)
    assert verdict.queueing() == pytest.approx(0.96)
    assert verdict.over(MEDIAN)
    # Little: 150 in flight at 50/s and 3 s each; 50/s x (2 + 0.04 + 0.05) s holds the queueing to 50 ms.
    assert 150 * verdict.gradient(MEDIAN) == pytest.approx(50 * (2.0 + 0.04 + 0.05))
    assert verdict.unqueued == pytest.approx(100.0)


def test_the_no_load_share_is_the_least_median_seen_over_the_window() -> None:
    fast = answers(40, until=10.0, every=0.05, share=0.03)
    noload = noload_seen(MEDIAN, (), fast, now=10.0)
    [(second, least)] = noload
    assert second == 10
    assert least == pytest.approx(0.03)
    # Queued answers later do not raise it ...
    noload = noload_seen(MEDIAN, noload, answers(40, until=30.0, every=0.05, share=0.8), now=30.0)
    assert min(least for _, least in noload) == pytest.approx(0.03)
    # ... until it is older than the window (a minute): then what the path shows now counts.
    noload = noload_seen(MEDIAN, noload, answers(40, until=80.0, every=0.05, share=0.5), now=80.0)
    assert min(least for _, least in noload) == pytest.approx(0.5)
    # Within one second, the least of what was seen.
    noload = noload_seen(MEDIAN, noload, answers(40, until=80.5, every=0.05, share=0.2), now=80.5)
    second, least = noload[-1]
    assert second == 80
    assert least == pytest.approx(0.2)
    assert noload_seen(MEDIAN, (), fast[:5], now=10.0) == ()  # too few answers to say


def test_a_path_queued_from_its_first_call_is_not_judged_against_a_share_it_never_showed() -> None:
    """The no-load share is the least *median* of the last minute: a burst queued from its first
    call sets it at its own median, so the budget does not cut on it (the limit then behaves as
    with no budget) — rather than against the burst's few first answers, which on a busy machine
    said less than the path's real share with no queue and held the limit at a third of its need."""
    burst = [Answer(admitted_at=0.0, done_at=2.04 + i / 60, model_seconds=2.0) for i in range(120)]
    verdict = judge(MEDIAN, burst, now=4.1, since=0.0)
    assert verdict is not None
    assert verdict.noload == pytest.approx(verdict.share)
    assert not verdict.over(MEDIAN)
    # Once a quieter moment has shown the median share with no queue, the queued one is judged.
    quiet = noload_seen(MEDIAN, (), answers(40, until=-5.0, every=0.05, share=0.04), now=-5.0)
    verdict = judge(MEDIAN, burst, now=4.1, since=0.0, noload=quiet)
    assert verdict is not None
    assert verdict.noload == pytest.approx(0.04)
    assert verdict.over(MEDIAN)


def test_a_verdict_of_equal_shares_counts_no_queueing_without_a_lower_no_load_share() -> None:
    verdict = judge(MEDIAN, answers(100, until=10.0, every=0.02, share=0.3), now=10.0, since=0.0)
    assert verdict is not None
    assert verdict.queueing() == 0
    assert verdict.roomy(MEDIAN)
    assert verdict.gradient(MEDIAN) == 1.0


def test_only_answers_admitted_since_the_limit_moved_are_judged() -> None:
    slow_before = answers(50, until=10.0, every=0.02, share=1.0)  # admitted 7-9 s
    assert judge(BUDGET, slow_before, now=10.0, since=9.5) is None
    fast_after = [Answer(admitted_at=9.5 + i * 0.01, done_at=11.6 + i * 0.01, model_seconds=2.0) for i in range(20)]
    verdict = judge(BUDGET, recent(BUDGET, slow_before + fast_after, 12.0), now=12.0, since=9.5)
    assert verdict is not None
    assert verdict.roomy(BUDGET)


def test_no_verdict_before_the_answers_admitted_since_the_move_had_their_time() -> None:
    # The first answers of calls admitted after the move are its fastest: judged that early, a
    # saturated path would look roomy.
    early = [Answer(admitted_at=10.0 + i * 0.01, done_at=12.05 + i * 0.01, model_seconds=2.0) for i in range(15)]
    assert judge(BUDGET, early, now=12.2, since=10.0) is None  # 2.2 s < the model's 2 s + 0.25 s
    assert judge(BUDGET, early, now=12.3, since=10.0) is not None


def test_too_few_answers_give_no_verdict() -> None:
    assert judge(BUDGET, answers(9, until=10.0, every=0.1, share=3.0), now=10.0, since=0.0) is None
    assert judge(BUDGET, [], now=10.0, since=0.0) is None


def test_a_raise_adds_the_square_root_of_the_limit() -> None:
    assert raise_step(144.0) == 12.0
    assert raise_step(0.5) == 1  # at least one call
