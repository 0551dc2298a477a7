"""The Ask's latency budget (core/latency_budget.py): what recent answers say about the limit."""

from __future__ import annotations

import pytest

from ragplatform.core.latency_budget import Answer, LatencyBudget, judge, raise_step, recent

BUDGET = LatencyBudget(target_seconds=0.25, quantile=0.9, window_seconds=2.0, min_answers=10)


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


def test_the_bound_is_the_answer_rate_times_the_model_and_half_the_budget() -> None:
    verdict = judge(BUDGET, answers(100, until=10.0, every=0.02, share=1.0), now=10.0, since=0.0)
    assert verdict is not None
    assert verdict.rate == pytest.approx(50.0)
    assert verdict.model_seconds == pytest.approx(2.0)
    assert verdict.bound == pytest.approx(50 * (2.0 + 0.125))
    assert verdict.unqueued == pytest.approx(100.0)


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


def test_a_raise_adds_what_half_the_budget_holds_at_the_answer_rate() -> None:
    verdict = judge(BUDGET, answers(120, until=10.0, every=1 / 60, share=0.05), now=10.0, since=0.0)
    assert verdict is not None
    assert raise_step(BUDGET, verdict) == pytest.approx(60 * 0.125, rel=0.02)
    trickle = judge(BUDGET, answers(10, until=10.0, every=1.0, share=0.05), now=10.0, since=-10.0)
    assert trickle is not None
    assert raise_step(BUDGET, trickle) == 1  # at least one call
