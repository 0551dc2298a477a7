"""The Ask's latency budget as a gradient on calls in flight: pure functions, no clock, no I/O.

What users wait for beyond the model is the platform's own share of an Ask: its time in the
gateway less the model's (`Answer.share`). Part of that share is work (auth, retrieval, storing
the turns) and stays when the path is idle — the *no-load* share; the rest is queueing (gRPC's
queues, busy event loops, a busy core), which grows without bound once more calls are admitted
than the path serves. The budget (`LatencyBudget.target_seconds`) is the queueing allowed: the
median share of recent answers over the no-load share.

The judgement is a gradient, as Netflix concurrency-limits' Gradient2 and Vegas judge round-trip
time against its no-load value, not an absolute bound:

* the no-load share is the least, over the last minute (`noload_window_seconds`), of the median
  (`noload_quantile`) of the answers of each judgement's window — a long-window minimum, as Vegas
  and BBR keep the least round-trip time. The median, not a low quantile: on a busy machine the
  few fastest answers of a burst said less than the path's share with no queue (measured: the
  10th percentile of a closed-loop start's first answers held the limit at ~70 where the path
  answered 60/s at 180). A path queued from its first call is then judged against its own share
  until a quieter moment shows less — the limit behaves as with no budget, not lower;
* a limit whose answers queue more than the budget is cut by the gradient
  (`Verdict.gradient`): (model + no-load + half the budget) / (model + share). Under a limit the
  path keeps busy, calls in flight = answer rate x (model + share) (Little's law), so this is the
  limit at which the share falls back to half the budget over the no-load share at the same rate;
* a limit that holds calls back and whose answers queue less than half the budget is raised by
  `raise_step`, the square root of the limit (Gradient2's queue allowance), once per round trip.

Judging the median against the no-load share, not a high quantile against an absolute budget,
matters on a machine shared with other work: a stall of the core puts every call of the moment
in the tail whatever the limit, and a tail-judged limit read those stalls as overload and cut
itself to half of what the path could serve (docs/performance.md, "Default off"). A rate-based
bound (answer rate x time) had a fixed point too: under a limit the measured rate *is* the limit
over the latency, so it read back the limit it was under.

Each judgement reads only answers admitted after the limit last moved (`judge`'s `since`): the
calls admitted before a change still run, and their latency says nothing about the new limit (as
TCP reacts once per round trip, not to every loss of one window).
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

    target_seconds: float  # the queueing allowed: the judged share over the no-load share
    quantile: float = 0.5  # the judged share: this quantile of the answers admitted since the last move
    window_seconds: float = 2.0  # answers finished this recently are judged ...
    min_answers: int = 10  # ... at least this many (the last ones, however old), none judged with fewer
    # While an answer came this recently, answers alone raise the limit — also across a lull between
    # loads (measured: at the start of a 3x load after a quiet spell, the lag's +10 % an interval
    # took the limit from 95 to 159 before the first answer, and the share to 0.7 s at p99).
    governs_seconds: float = 30.0
    noload_quantile: float = 0.5  # the no-load share: this quantile of each judgement's answers ...
    noload_window_seconds: float = 60.0  # ... the least seen over this long

    @property
    def judged(self) -> bool:
        return self.target_seconds > 0


# The least no-load share seen in each second of the no-load window: (second, least share).
NoLoad = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Verdict:
    """What the recent answers say."""

    share: float  # the `quantile` of the shares of the answers admitted since the limit last moved
    noload: float  # the no-load share: the least median (`noload_quantile`) of the last minute's judgements
    rate: float  # answers finished a second
    model_seconds: float  # the model's mean time per answer

    @property
    def unqueued(self) -> float:
        """Calls in flight at this rate with no share at all: only the model's time (Little)."""
        return self.rate * self.model_seconds

    def queueing(self) -> float:
        """The share over the no-load share: what the answers waited in queues."""
        return max(0.0, self.share - self.noload)

    def over(self, budget: LatencyBudget) -> bool:
        """The answers queue more than the budget: the path admits more than it serves in time."""
        return self.queueing() > budget.target_seconds

    def roomy(self, budget: LatencyBudget) -> bool:
        """The answers queue within half the budget: there is room to admit more."""
        return self.queueing() <= budget.target_seconds / 2

    def gradient(self, budget: LatencyBudget) -> float:
        """The share of the calls in flight at which the answers would queue half the budget at the
        same answer rate (Little's law), at most 1."""
        wanted = self.model_seconds + self.noload + budget.target_seconds / 2
        return min(1.0, wanted / (self.model_seconds + self.share))


def recent(budget: LatencyBudget, answers: Sequence[Answer], now: float) -> tuple[Answer, ...]:
    """The answers worth keeping at `now`: those finished within the window, or the last
    `min_answers` when fewer (a slow trickle of answers is still judged)."""
    fresh = tuple(a for a in answers if a.done_at >= now - budget.window_seconds)
    if len(fresh) >= budget.min_answers:
        return fresh
    return tuple(answers[-budget.min_answers :])


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (nearest rank) of `values`, which must not be empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def noload_seen(budget: LatencyBudget, noload: NoLoad, answers: Sequence[Answer], now: float) -> NoLoad:
    """The no-load window at `now`, with what `answers` (as `recent` keeps them) show: their
    `noload_quantile` share, when there are at least `min_answers` of them."""
    second = math.floor(now)
    kept = tuple((s, least) for s, least in noload if s > second - budget.noload_window_seconds)
    if len(answers) < budget.min_answers:
        return kept
    low = quantile([a.share for a in answers], budget.noload_quantile)
    if kept and kept[-1][0] == second:
        return (*kept[:-1], (second, min(kept[-1][1], low)))
    return (*kept, (second, low))


def judge(
    budget: LatencyBudget, answers: Sequence[Answer], now: float, since: float, noload: NoLoad = ()
) -> Verdict | None:
    """The verdict on `answers` (as `recent` keeps them) at `now`, judging the share only of those
    admitted at or after `since` (when the limit last moved), against the least no-load share of
    `noload` and of these answers. None until an answer admitted then has had the model's time and
    the budget to finish (the first to finish are the fastest: judged sooner, a saturated path
    would look roomy), and with fewer than `min_answers` of those."""
    if not answers:
        return None
    model_seconds = sum(a.model_seconds for a in answers) / len(answers)
    if now - since < model_seconds + budget.target_seconds:
        return None
    judged = [a.share for a in answers if a.admitted_at >= since]
    if len(judged) < budget.min_answers:
        return None
    least = min([least for _, least in noload], default=math.inf)
    if len(answers) >= budget.min_answers:
        least = min(least, quantile([a.share for a in answers], budget.noload_quantile))
    # The rate over the window, or over the span of the answers kept when they are older.
    span = max(budget.window_seconds, now - min(a.done_at for a in answers))
    return Verdict(
        share=quantile(judged, budget.quantile),
        noload=least,
        rate=len(answers) / span,
        model_seconds=model_seconds,
    )


def raise_step(limit: float) -> float:
    """How many calls a raise may add: the square root of the limit (Gradient2's queue allowance;
    at least one) — small against a large limit, so probing a saturated path queues few calls."""
    return max(1.0, math.sqrt(limit))
