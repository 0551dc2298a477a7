"""An adaptive concurrency limit driven by event-loop lag: pure functions, no clock, no I/O.

Why event-loop lag: a grpc.aio process does all its Python work on one event loop, so the time a
ready callback waits for that loop is the process's own queueing delay. It stays near zero while
the process keeps up and grows without bound once it has taken more work than its CPU can do;
then every call waits behind it, refusals included. A fixed in-flight cap cannot know where that
point is (it moves with the model's latency, the CPU a pod gets, the cost of an answer), so the
limit follows the delay instead, in the manner of the load-shedding designs that work:

* CoDel: judge the queue by the delay it adds, and only by a *standing* delay — the smallest lag
  seen over an interval of at least a few samples — so a burst the loop clears at once, or one
  stall (the process descheduled for a while on a busy machine), is not overload;
* Netflix concurrency-limits / Envoy adaptive concurrency: a concurrency limit that moves, cut
  multiplicatively (AIMD) when the delay says overloaded, raised additively while it is the limit
  that holds calls back and the delay says there is room.

A cut starts from the calls in flight when overload was seen (not from a limit that was never
reached), then holds for `hold_seconds`: the calls admitted before it still run, and the lag they
cause is not a reason to cut again.

A process's own lag does not show that a service behind it is saturated (on a shared core the
busiest process lags most, not the edge). So, as Netflix's AIMD limit treats a dropped request, a
call this process made being refused for capacity upstream (`upstream_refused`) is overload too;
and, as TCP's ECN marks a packet instead of dropping it, a service behind the edge whose standing
lag passes `mark_lag_seconds` (`LimitState.congested`) marks its answers, which the edge treats as
it treats a refusal — so it sheds what the services behind it cannot take before they have to
refuse anything after it has cost every hop before.

Neither lag sees the queue in front of a process: gRPC's own queue of calls it has not yet
picked up, which on a busy core grows to seconds while the loop's lag stays at a few ms (at 3x
load, measured: admitted Asks waited 2.3 s there, the gateway's loop lagged 4.6 ms on average),
nor where an Ask waits behind the edge. What does see a saturated path is the latency of the
work itself, as Netflix's gradient limits judge by round-trip time: a process told how long each
answer took and how much of that was the model's (`answered`: the gateway's Ask) judges the
platform's share against its budget (core/latency_budget.py). Over budget, the limit falls to
the calls its measured answer rate holds within the budget (Little's law), not by a guessed
factor; and while answers report, they alone raise it — once per round trip of an Ask, by what
half the budget holds — since the +2 % an interval that lag allows outruns an Ask's 2 s of
feedback (measured: the limit then sat at its ceiling at 3x, and accepted asks took 1.6 s over
the model at p99).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ragplatform.core.latency_budget import Answer, LatencyBudget, Verdict, judge, raise_step, recent


@dataclass(frozen=True)
class LimitPolicy:
    """How the limit moves. `lag_target_seconds` 0 turns adapting off: the limit is `ceiling`."""

    ceiling: int  # never more calls at once (RAG_MAX_IN_FLIGHT)
    lag_target_seconds: float  # a standing lag above this is overload
    floor: int = 4  # never fewer (nor more than `ceiling`): a process always makes some progress
    interval_seconds: float = 0.1  # the smallest lag over this long is the standing lag ...
    interval_samples: int = 3  # ... and over at least this many samples
    decrease_factor: float = 0.9  # a cut keeps this share of the calls in flight
    increase_share: float = 0.02  # a raise adds this share of the limit (at least one call) ...
    # ... or this share once nothing has said overload for `quiet_seconds`: a limit cut in a past
    # overload climbs back within about a second instead of refusing a normal load for several
    # (measured: at 80 % load right after 3x, a limit left at 52 needed ~5 s to reach 145).
    quiet_increase_share: float = 0.1
    quiet_seconds: float = 3.0
    hold_seconds: float = 1.0  # after a cut, no other cut for this long
    mark_lag_seconds: float = 0.0  # a standing lag above this marks answers congested (0: never)
    budget: LatencyBudget = field(default_factory=lambda: LatencyBudget(0.0))  # answers' budget (`answered`)
    deepest_cut: float = 0.5  # a cut on the budget keeps at least this share of the calls in flight
    # Under the most calls the path has lately held with no queue (the best answer rate it lately
    # showed times the model's time, `LimitState.sustained`), a raise the answers allow comes every
    # interval and adds this share of the limit (TCP's slow start under its threshold): a limit cut
    # deep — by lag, marks, or a stall of the machine read as overload — is back within a few
    # seconds, in steps small enough not to admit a burst that comes back from the model at once
    # (measured: at 3x a limit cut to 47 crept back one step a round trip to 69 in 20 s, answering
    # 27 asks/s where the path had answered 66).
    recovery_share: float = 0.05
    # An interval keeps this share of `sustained`: a half-life of ~5 min. Measured with ~35 s: the
    # memory of what the path held was gone within a level, and limits cut deep by the shared
    # machine's stalls crept back one step a round trip (3x: 18 asks/s answered where the path had
    # answered 69; 0.8x: 259 asks and 62 uploads refused).
    sustained_decay: float = 0.99977

    @property
    def adaptive(self) -> bool:
        return self.lag_target_seconds > 0


@dataclass(frozen=True)
class LimitState:
    """Where the limit is, and what the current interval has seen so far."""

    limit: float
    interval_began: float
    smallest_lag: float = math.inf  # in the current interval
    samples: int = 0  # in the current interval
    held_back: bool = False  # a call was refused in the current interval
    answers: tuple[Answer, ...] = field(default=(), repr=False)  # recent answers (`answered`)
    last_cut: float = -math.inf
    last_raise: float = -math.inf  # the last raise the answers' latency allowed
    sustained: float = 0.0  # the most calls the path lately held with no queue (decaying; see the policy)
    cut_by: str = ""  # what made the last cut: "lag", "latency" (the budget) or "upstream"
    congested: bool = False  # the last interval's standing lag passed `mark_lag_seconds`


def initial_state(policy: LimitPolicy, now: float) -> LimitState:
    return LimitState(limit=float(policy.ceiling), interval_began=now)


def admits(state: LimitState, in_flight: int) -> bool:
    """Whether one more call may start now."""
    return in_flight < int(state.limit)


def refused(state: LimitState) -> LimitState:
    """Note that the limit held a call back (the limit was binding in this interval)."""
    return state if state.held_back else replace(state, held_back=True)


def answered(policy: LimitPolicy, state: LimitState, answer: Answer) -> LimitState:
    """Note one answer (see the module's docstring); judged when an interval ends."""
    if not (policy.adaptive and policy.budget.judged):
        return state
    return replace(state, answers=(*state.answers, answer))


def observe_lag(policy: LimitPolicy, state: LimitState, now: float, lag: float, in_flight: int) -> LimitState:
    """Take one lag sample; at the end of each interval (`interval_seconds` and
    `interval_samples`, whichever ends later), move the limit:

    * standing lag above the target, and no cut within `hold_seconds`: cut to `decrease_factor` x
      min(limit, in flight), not below `floor` (nor `ceiling`, if lower);
    * else the answers' share over its budget (core/latency_budget.py), no cut within the hold:
      cut to the calls the measured answer rate holds within the budget, between `deepest_cut` and
      `decrease_factor` x min(limit, in flight);
    * else, a call held back in the interval: while answers report (one came within the budget's
      `governs_seconds`), raise once they say there is room (by `raise_step`, once per Ask's round
      trip; by `recovery_share` of the limit while under `sustained`, the most calls the path has
      lately held with no queue, which each verdict updates); with no answers to judge, raise by
      `increase_share` of the limit (`quiet_increase_share` when no cut came within
      `quiet_seconds`; at least one call); never above `ceiling`;
    * otherwise: keep it (a limit nobody reaches is not raised, so it stays meaningful).

    It also notes whether that standing lag passed `mark_lag_seconds` (`congested`).
    """
    if not policy.adaptive and not policy.mark_lag_seconds:
        return state
    smallest, samples = min(state.smallest_lag, lag), state.samples + 1
    if now - state.interval_began < policy.interval_seconds or samples < policy.interval_samples:
        return replace(state, smallest_lag=smallest, samples=samples)
    congested = 0 < policy.mark_lag_seconds < smallest
    if not policy.adaptive:
        return LimitState(limit=state.limit, interval_began=now, congested=congested)
    answers = recent(policy.budget, state.answers, now) if state.answers else ()
    # Under `sustained` a raise needs no answers of its own: the path has held that many calls.
    since = state.last_cut if state.limit < state.sustained else max(state.last_cut, state.last_raise)
    verdict = judge(policy.budget, answers, now, since=since)
    sustained = state.sustained * policy.sustained_decay
    state = replace(state, sustained=sustained if verdict is None else max(sustained, verdict.unqueued))
    if smallest > policy.lag_target_seconds:
        state = _cut(policy, state, now, in_flight, "lag")
    elif verdict is not None and verdict.over(policy.budget):
        state = _cut_to_budget(policy, state, now, in_flight, verdict)
    elif state.held_back:
        reporting = bool(answers) and answers[-1].done_at >= now - policy.budget.governs_seconds
        state = _raised_by_answers(policy, state, now, verdict) if reporting else _raised(policy, state, now)
    return LimitState(
        limit=state.limit,
        interval_began=now,
        answers=answers,
        last_cut=state.last_cut,
        last_raise=state.last_raise,
        sustained=state.sustained,
        cut_by=state.cut_by,
        congested=congested,
    )


def _raised(policy: LimitPolicy, state: LimitState, now: float) -> LimitState:
    quiet = now - state.last_cut >= policy.quiet_seconds
    share = policy.quiet_increase_share if quiet else policy.increase_share
    return replace(state, limit=min(float(policy.ceiling), state.limit + max(1.0, state.limit * share)))


def _cut_to_budget(policy: LimitPolicy, state: LimitState, now: float, in_flight: int, verdict: Verdict) -> LimitState:
    """Cut to what the answers' budget holds."""
    return _cut(policy, state, now, in_flight, "latency", bound=verdict.bound)


def _raised_by_answers(policy: LimitPolicy, state: LimitState, now: float, verdict: Verdict | None) -> LimitState:
    if verdict is None or not verdict.roomy(policy.budget):
        return state
    raised = state.limit + raise_step(policy.budget, verdict)
    if raised < state.sustained:  # room the path has lately had: recover fast, up to it
        raised = min(state.sustained, max(raised, state.limit * (1 + policy.recovery_share)))
    return replace(state, limit=min(float(policy.ceiling), raised), last_raise=now)


def upstream_refused(policy: LimitPolicy, state: LimitState, now: float, in_flight: int) -> LimitState:
    """A call this process made was refused upstream for capacity, or answered marked congested:
    cut as for a standing lag."""
    return _cut(policy, state, now, in_flight, "upstream") if policy.adaptive else state


def _cut(
    policy: LimitPolicy, state: LimitState, now: float, in_flight: int, by: str, bound: float | None = None
) -> LimitState:
    """`decrease_factor` x min(limit, in flight) — or, with a `bound` (the calls the answers' budget
    holds), that bound when it is lower, down to `deepest_cut` x min(limit, in flight) — not below
    `floor` (nor `ceiling`, if lower); at most once per `hold_seconds`."""
    if now - state.last_cut < policy.hold_seconds:
        return state
    least = float(min(policy.floor, policy.ceiling))
    base = min(state.limit, float(in_flight))
    limit = base * policy.decrease_factor
    if bound is None:
        return replace(state, limit=max(least, limit), last_cut=now, cut_by=by)
    limit = max(base * policy.deepest_cut, min(limit, bound))
    return replace(state, limit=max(least, limit), last_cut=now, cut_by=by)
