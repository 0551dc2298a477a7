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
platform's share against its no-load value (core/latency_budget.py). Queueing over the budget
cuts the limit by the gradient (Little's law at the measured share), not by a guessed factor;
and while answers report, they alone raise it — by the square root of the limit once per round
trip of an Ask, since the +2 % an interval that lag allows outruns an Ask's 2 s of feedback
(measured: the limit then sat at its ceiling at 3x, and accepted asks took 1.6 s over the model
at p99).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ragplatform.core.latency_budget import (
    Answer,
    LatencyBudget,
    NoLoad,
    Verdict,
    judge,
    noload_seen,
    raise_step,
    recent,
)


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
    deepest_cut: float = 0.5  # a cut by the budget's gradient keeps at least this share of the calls in flight
    # ... and moves only this share of the way the gradient points (Gradient2's smoothing): a move
    # is judged a round trip later, and a stall of the machine read as overload costs less.
    gradient_smoothing: float = 0.5
    # ... unless the answers queue this many times the budget: no stall, a standing queue (after a
    # burst at a limit far too high, smoothing would take round trips of seconds each).
    unsmoothed_queueing: float = 4.0
    # A cut by the answers after which they queue at least this share of what made it is undone
    # (the queueing was not the limit's doing: see `_judged_cut`).
    unexplained_share: float = 0.9
    # A cut by the answers keeps at least this share of `sustained`, the most calls the path has
    # lately held with no queue (measured: at 300 closed-loop streams, a share inflated by the busy
    # harness core whatever the limit cut the limit to ~90 where the path had held ~130).
    sustained_floor: float = 0.9
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
    noload: NoLoad = ()  # the no-load share's window (core/latency_budget.py)
    # The last cut by the answers, until the answers of calls admitted after it judge it: the limit
    # before it, and the queueing and answer rate that made it (see `_judged_cut`).
    latency_cut: tuple[float, float, float] | None = None
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
    * else the answers queue over the budget (core/latency_budget.py: their median share over the
      no-load share) while the calls in flight are at least `decrease_factor` x the limit, no cut
      within the hold: cut min(limit, in flight) by the budget's gradient — `gradient_smoothing`
      of the way (all of it when they queue over `unsmoothed_queueing` x the budget), keeping at
      least `deepest_cut` of it;
    * else, a call held back in the interval: while answers govern (one came within the budget's
      `governs_seconds`), raise once they say there is room (by `raise_step`, the square root of
      the limit, once per Ask's round trip; by `recovery_share` of the limit while under
      `sustained`, the most calls the path has lately held with no queue, which each verdict
      updates); with no answers to judge, raise by
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
    noload = noload_seen(policy.budget, state.noload, answers, now) if answers else state.noload
    # Under `sustained` a raise needs no answers of its own: the path has held that many calls.
    since = state.last_cut if state.limit < state.sustained else max(state.last_cut, state.last_raise)
    verdict = judge(policy.budget, answers, now, since=since, noload=noload)
    sustained = state.sustained * policy.sustained_decay
    # Only answers within the budget say what the path holds with no queue: a saturated path's
    # answer rate is its most, not what it serves in time (measured: on a shared core the path
    # answered ~90/s at 3x with +1.5 s at p99 where it served ~60/s within 250 ms, and a memory set
    # by the 90 kept the limit from being cut under ~160 calls).
    if verdict is not None and not verdict.over(policy.budget):
        sustained = max(sustained, verdict.unqueued)
    state = replace(state, sustained=sustained)
    if verdict is not None and state.latency_cut is not None:
        state, noload = _judged_cut(policy, state, now, verdict, noload)
        if state.latency_cut is None and state.cut_by == "external":
            verdict = None  # judged: this round trip's answers are spent on it
    if smallest > policy.lag_target_seconds:
        state = _cut(policy, state, now, in_flight, "lag")
    elif verdict is not None and verdict.over(policy.budget) and in_flight >= state.limit * policy.decrease_factor:
        # Only a limit that is (nearly) reached is cut by the answers: with fewer calls in flight
        # the queue is not the limit's doing (a load that fell leaves its queued answers behind).
        # Far over the budget it is no stall: cut all the way at once (smoothing would take round trips).
        far = verdict.queueing() > policy.unsmoothed_queueing * policy.budget.target_seconds
        smoothing = 1.0 if far else policy.gradient_smoothing
        gradient = verdict.gradient(policy.budget)
        cut = _cut(policy, state, now, in_flight, "latency", gradient=gradient, smoothing=smoothing)
        # Never under what the path has lately held with no queue: a latency it shows there is not
        # the limit's doing (it stays the lag's, the marks' and the refusals' to cut further).
        floor = policy.sustained_floor * state.sustained
        if cut.limit < floor:
            cut = state if state.limit <= floor else replace(cut, limit=floor)
        if cut is not state:
            state = replace(cut, latency_cut=(state.limit, verdict.queueing(), verdict.rate))
    elif state.held_back:
        governing = governed(policy, replace(state, answers=answers), now)
        state = _raised_by_answers(policy, state, now, verdict) if governing else _raised(policy, state, now)
    return LimitState(
        limit=state.limit,
        interval_began=now,
        answers=answers,
        last_cut=state.last_cut,
        last_raise=state.last_raise,
        sustained=state.sustained,
        cut_by=state.cut_by,
        congested=congested,
        noload=noload,
        latency_cut=state.latency_cut,
    )


def _judged_cut(
    policy: LimitPolicy, state: LimitState, now: float, verdict: Verdict, noload: NoLoad
) -> tuple[LimitState, NoLoad]:
    """The first verdict on the answers of calls admitted after a cut by the answers: a gradient
    assumes the queueing is the limit's doing (Little's law on a saturated path, whose answer rate
    is its capacity whatever it holds). If the cut took calls away and both the queueing and the
    answer rate stayed put or fell with them (at least `unexplained_share` of the queueing, at most
    that share of the rate), it was not: something
    the limit does not feed is slow (on this project's bench, the backends and doubles on a busy
    harness core; in a cluster, a slow database or a noisy neighbour), and cutting again would
    only refuse more while answering less (measured: a limit cut from 180 to ~60 at 300 streams).
    Then the cut is undone and that share becomes the no-load share, as Gradient2's long-term
    latency follows a latency that stays. Otherwise the cut stands."""
    assert state.latency_cut is not None
    before, queueing, rate = state.latency_cut
    state = replace(state, latency_cut=None)
    if verdict.queueing() < policy.unexplained_share * queueing or verdict.rate > policy.unexplained_share * rate:
        return state, noload
    raised = max(0.0, verdict.share - policy.budget.target_seconds / 2)
    return replace(state, limit=max(state.limit, before), cut_by="external"), ((math.floor(now), raised),)


def _raised(policy: LimitPolicy, state: LimitState, now: float) -> LimitState:
    quiet = now - state.last_cut >= policy.quiet_seconds
    share = policy.quiet_increase_share if quiet else policy.increase_share
    return replace(state, limit=min(float(policy.ceiling), state.limit + max(1.0, state.limit * share)))


def _raised_by_answers(policy: LimitPolicy, state: LimitState, now: float, verdict: Verdict | None) -> LimitState:
    if verdict is None or not verdict.roomy(policy.budget):
        return state
    raised = state.limit + raise_step(state.limit)
    if raised < state.sustained:  # room the path has lately had: recover fast, up to it
        raised = min(state.sustained, max(raised, state.limit * (1 + policy.recovery_share)))
    return replace(state, limit=min(float(policy.ceiling), raised), last_raise=now)


def upstream_refused(policy: LimitPolicy, state: LimitState, now: float, in_flight: int) -> LimitState:
    """A call this process made was refused upstream for capacity: cut as for a standing lag."""
    return _cut(policy, state, now, in_flight, "upstream") if policy.adaptive else state


def upstream_congested(policy: LimitPolicy, state: LimitState, now: float, in_flight: int) -> LimitState:
    """A call this process made was answered marked congested: cut as for a refusal — unless
    answers govern the limit (`governed`): their share already holds the time calls wait behind
    this process, and a mark, sent whenever a service's loop lags (as it does at a busy core's
    capacity, queue or not), would only cut a limit the answers say is right (measured: with
    both, the limit sat at half of what the path needed at 3x)."""
    return state if governed(policy, state, now) else upstream_refused(policy, state, now, in_flight)


def governed(policy: LimitPolicy, state: LimitState, now: float) -> bool:
    """Whether answers govern the limit: one was reported within the budget's `governs_seconds`."""
    return bool(state.answers) and state.answers[-1].done_at >= now - policy.budget.governs_seconds


def _cut(
    policy: LimitPolicy,
    state: LimitState,
    now: float,
    in_flight: int,
    by: str,
    gradient: float | None = None,
    smoothing: float = 1.0,
) -> LimitState:
    """`decrease_factor` x min(limit, in flight) — or, with the answers' `gradient`, `smoothing`
    of the way from min(limit, in flight) to that share of it, keeping at least `deepest_cut` of
    it — not below `floor` (nor `ceiling`, if lower); at most once per `hold_seconds`."""
    if now - state.last_cut < policy.hold_seconds:
        return state
    least = float(min(policy.floor, policy.ceiling))
    base = min(state.limit, float(in_flight))
    share = policy.decrease_factor if gradient is None else max(policy.deepest_cut, 1 - smoothing * (1 - gradient))
    return replace(state, limit=max(least, base * share), last_cut=now, cut_by=by)
