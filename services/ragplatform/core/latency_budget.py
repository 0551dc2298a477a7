"""The Ask's latency budget as a bound on calls in flight: pure functions, no clock, no I/O.

What users wait for beyond the model is the platform's own share of an Ask: its time in the
gateway less the model's (`Answer.share`). Its budget (`LatencyBudget.target_seconds`) holds
for a high quantile of the answers of the last few seconds, not their best one: a limit judged
by its fastest call admits until the slow ones queue for seconds.

By Little's law a process that finishes answers at a rate λ, each taking the model's M seconds
and the platform's share s, holds λ·(M + s) calls in flight. Once its path is saturated λ is its
capacity whatever it admits, and every call admitted beyond λ·(M + s) only waits in a queue
(gRPC's, an event loop's, a busy core's) — so when the share stands over its budget, the bound
that keeps it within is the measured rate times the model's time plus half the budget
(`Verdict.bound`): taken from what the path does, not from a factor guessed in advance. It is
the gradient limit's rule (Netflix concurrency-limits: the limit times the latency wanted over
the latency seen) with the rate measured instead of inferred from the limit.

Each judgement reads only answers admitted after the limit last moved (`judge`'s `since`): the
calls admitted before a change still run, and their latency says nothing about the new limit (as
TCP reacts once per round trip, not to every loss of one window). That also paces the raises:
one per round trip of an Ask at most, by what half the budget holds at the measured rate
(`raise_step`), so probing for room overshoots a saturated path by half the budget at most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One Ask answered: when the process admitted it and finished it (a monotonic clock), and how
    long the model took for it, as the generation service measured it."""

    admitted_at: float
    done_at: float
    model_seconds: float

    @property
    def share(self) -> float:
        """The platform's own share of the answer's latency."""
        return max(0.0, self.done_at - self.admitted_at - self.model_seconds)


@dataclass(frozen=True)
class LatencyBudget:
    """How answers are judged. `target_seconds` 0: not judged."""

    target_seconds: float  # the platform's share ...
    quantile: float = 0.9  # ... of this share of the judged answers stays under it
    window_seconds: float = 2.0  # answers finished this recently are judged ...
    min_answers: int = 10  # ... at least this many (the last ones, however old), none judged with fewer
    # While an answer came this recently, answers alone raise the limit — also across a lull between
    # loads (measured: at the start of a 3x load after a quiet spell, the lag's +10 % an interval
    # took the limit from 95 to 159 before the first answer, and the share to 0.7 s at p99).
    governs_seconds: float = 30.0

    @property
    def judged(self) -> bool:
        return self.target_seconds > 0


@dataclass(frozen=True)
class Verdict:
    """What the recent answers say."""

    share: float  # the `quantile` of the shares of the answers admitted since the limit last moved
    rate: float  # answers finished a second
    model_seconds: float  # the model's mean time per answer
    bound: float  # calls in flight that hold the share to half the budget at this rate (Little)

    @property
    def unqueued(self) -> float:
        """Calls in flight at this rate with no share at all: only the model's time (Little)."""
        return self.rate * self.model_seconds

    def over(self, budget: LatencyBudget) -> bool:
        """The share stands over the budget: the path admits more than it serves in time."""
        return self.share > budget.target_seconds

    def roomy(self, budget: LatencyBudget) -> bool:
        """The share stands within half the budget: there is room to admit more."""
        return self.share <= budget.target_seconds / 2


def recent(budget: LatencyBudget, answers: Sequence[Answer], now: float) -> tuple[Answer, ...]:
    """The answers worth keeping at `now`: those finished within the window, or the last
    `min_answers` when fewer (a slow trickle of answers is still judged)."""
    fresh = tuple(a for a in answers if a.done_at >= now - budget.window_seconds)
    if len(fresh) >= budget.min_answers:
        return fresh
    return tuple(answers[-budget.min_answers :])


def judge(budget: LatencyBudget, answers: Sequence[Answer], now: float, since: float) -> Verdict | None:
    """The verdict on `answers` (as `recent` keeps them) at `now`, judging the share only of those
    admitted at or after `since` (when the limit last moved). None until an answer admitted then
    has had the model's time and the budget to finish (the first to finish are the fastest: judged
    sooner, a saturated path would look roomy), and with fewer than `min_answers` of those."""
    if not answers:
        return None
    model_seconds = sum(a.model_seconds for a in answers) / len(answers)
    if now - since < model_seconds + budget.target_seconds:
        return None
    judged = sorted(a.share for a in answers if a.admitted_at >= since)
    if len(judged) < budget.min_answers:
        return None
    share = judged[min(len(judged) - 1, math.ceil(budget.quantile * len(judged)) - 1)]
    # The rate over the window, or over the span of the answers kept when they are older.
    span = max(budget.window_seconds, now - min(a.done_at for a in answers))
    rate = len(answers) / span
    return Verdict(
        share=share,
        rate=rate,
        model_seconds=model_seconds,
        bound=rate * (model_seconds + budget.target_seconds / 2),
    )


def raise_step(budget: LatencyBudget, verdict: Verdict) -> float:
    """How many calls a raise may add: what half the budget holds at the measured rate — if the
    path is saturated after all, the extra calls wait that much longer at most (at least one)."""
    return max(1.0, verdict.rate * budget.target_seconds / 2)
