"""Admission control: a process takes only as many calls at once as it can serve without its event
loop falling behind, and refuses the excess at once with RESOURCE_EXHAUSTED and a
`retry-after-seconds` hint (the rate limiter's format), rather than queueing it behind work it
cannot finish in time.

The limit adapts (core/adaptive_limit.py): it falls when the loop's standing lag exceeds
RAG_ADMISSION_LAG_TARGET_SECONDS and climbs back while calls are held back and the loop keeps
up, never above RAG_MAX_IN_FLIGHT. A refusal is decided before the call's handler is built (its
request is not even decoded: see `early_refusal` in base.py), so it costs the process almost
nothing and arrives as soon as the loop picks the call up — which it does promptly, because the
limit keeps the loop's lag near its target.

A call on the Ask path that an upstream service refuses for capacity, or answers marked
congested (`upstream_refused`, called by core/clients.py), lowers the limit too: the edge sheds
what the services behind it cannot take. A service behind the edge marks each answer it finishes
while its standing lag is over RAG_ADMISSION_MARK_LAG_SECONDS (trailing metadata `CONGESTED`).
And a call that reports its answer (`answer_done`: the gateway's Ask, with the model's time for
it) feeds the latency budget (core/latency_budget.py): the platform's share of recent answers
over RAG_ADMISSION_LATENCY_TARGET_SECONDS lowers the limit to what the measured answer rate
holds within it — it sees the queues (gRPC's, the services' behind it) that no loop's lag shows.

Besides the calls in flight, the process may pace the calls it admits: RAG_ADMISSION_PACE_SECONDS
admits the limit's calls at most once per that many seconds (RAG_MAX_IN_FLIGHT's while the limit
is at its ceiling; a cut limit slows the rate with it), 2 x sqrt(RAG_MAX_IN_FLIGHT) of them at
once after a quiet spell (`settings.admission_burst_for`; a GCRA, domain/gcra.py). Only the
calls of the service's paced methods count (`ServiceApp.paced_methods`; the gateway's: Ask, the
call whose time the pace is; none named: every call). Under
overload a limit on calls in flight alone admits in waves, since each call that ends frees a slot
a waiting caller takes at once, and calls admitted together end together; a rate spreads them. A
call refused at the limit drains the rate's burst, so slots freed together refill at the rate.

A streamed call (an Ask) counts until its last message is sent. Health checks and reflection
are never refused: an overloaded process is busy, not dead. The outermost scoped interceptor, so
a refusal costs as little as possible (no auth, no access-log line: the refused counter says it).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from ragplatform.core import adaptive_limit
from ragplatform.core.adaptive_limit import LimitPolicy, admits, initial_state, observe_lag, refused
from ragplatform.core.error_mapping import trailing_metadata_for
from ragplatform.core.interceptors.base import ScopedInterceptor, read_unread_requests
from ragplatform.core.latency_budget import Answer
from ragplatform.core.loop_lag import sample_loop_lag
from ragplatform.core.metrics import (
    ADMISSION_CUTS,
    ADMISSION_IN_FLIGHT,
    ADMISSION_LIMIT,
    ADMISSION_QUEUE_SECONDS,
    ASK_PLATFORM_SECONDS,
    EVENT_LOOP_LAG,
    GRPC_REFUSED,
)
from ragplatform.core.request_start import REQUEST_START_HEADER, request_age_seconds
from ragplatform.domain.errors import ResourceExhausted
from ragplatform.domain.gcra import gcra

# Trailing metadata of an answer finished while its service was congested.
CONGESTED = ("x-ragplatform-congested", "1")

# The admission control of the call being served (each call runs in its own task and context),
# and when it admitted the call (time.monotonic()).
_serving: ContextVar[AdmissionInterceptor | None] = ContextVar("admission", default=None)
_admitted_at: ContextVar[float] = ContextVar("admitted_at", default=0.0)


def upstream_refused() -> None:
    """A call made while serving a call was refused upstream for capacity: tell the admission
    control that admitted the call being served (a no-op outside a served call)."""
    admission = _serving.get()
    if admission is not None:
        admission.note_upstream_refusal()


def upstream_congested() -> None:
    """A call made while serving a call was answered marked congested (`CONGESTED`): tell the
    admission control that admitted the call being served (a no-op outside a served call)."""
    admission = _serving.get()
    if admission is not None:
        admission.note_upstream_congestion()


def answer_done(model_seconds: float) -> None:
    """The call being served has its answer, of which the model took `model_seconds`: the rest of
    its time since it was admitted is the platform's share, judged against the latency budget of
    the admission control that admitted it (RAG_ADMISSION_LATENCY_TARGET_SECONDS; a no-op outside
    a served call)."""
    admission = _serving.get()
    if admission is not None:
        admission.note_answer(Answer(_admitted_at.get(), time.monotonic(), model_seconds))


@dataclass(frozen=True)
class AdmissionRate:
    """The admission limit's calls admitted at most once per `pace_seconds` (the time a call takes),
    `burst` of them at once after a quiet spell. The rate follows the adaptive limit: a limit cut to
    what the path holds in time also slows what it admits. With `methods`, only calls of those
    methods count and are paced (the long calls the pace is sized for: at the gateway, an Ask);
    empty: every call."""

    pace_seconds: float
    burst: int
    methods: frozenset[str] = frozenset()

    def paces(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def per_second(self, limit: float) -> float:
        return max(1.0, limit) / self.pace_seconds


class AdmissionInterceptor(ScopedInterceptor):
    """Bounds the calls this process has in flight (every method together) by an adaptive limit,
    and, with a `rate`, the calls it admits per second."""

    def __init__(
        self, service: str, policy: LimitPolicy, retry_after_seconds: float, rate: AdmissionRate | None = None
    ) -> None:
        self.service = service
        self.policy = policy
        self.state = initial_state(policy, time.monotonic())
        self.in_flight = 0
        self.rate = rate
        self._rate_tat: float | None = None  # the rate's GCRA state (None: nothing admitted yet)
        self._retry_after = retry_after_seconds
        self._in_flight_gauge = ADMISSION_IN_FLIGHT.labels(service)
        self._limit_gauge = ADMISSION_LIMIT.labels(service)
        self._limit_gauge.set(int(self.state.limit))
        self._lag = EVENT_LOOP_LAG.labels(service)
        self._quiet_lag = min(
            (t for t in (policy.lag_target_seconds, policy.mark_lag_seconds) if t > 0), default=math.inf
        )
        self._platform_share = ASK_PLATFORM_SECONDS.labels(service)
        self._queued = {
            outcome: ADMISSION_QUEUE_SECONDS.labels(service, outcome) for outcome in ("admitted", "refused")
        }

    @property
    def limit(self) -> int:
        """Calls this process takes at once right now."""
        return int(self.state.limit)

    def early_refusal(self, method: str) -> ResourceExhausted | None:
        if not admits(self.state, self.in_flight):
            return self._refuse_at_limit(method)
        if self.rate is not None and self.rate.paces(method):
            per_second = self.rate.per_second(self.state.limit)
            decision = gcra(self._rate_tat, time.monotonic(), per_second, self.rate.burst)
            if decision.retry_after > 0:
                return self._refuse(method, f"admitting {per_second:.3g} calls a second at most")
            self._rate_tat = decision.new_tat
        return None

    def _refuse_at_limit(self, method: str) -> ResourceExhausted:
        """A call refused at the limit. It also drains the rate's burst: the burst is for quiet
        spells, not for a saturated process, so no credit is left (the next call is admitted at once,
        the ones after at the rate). Else the credit a saturated process does not spend would let the
        slots that free up together fill at once, and the waves the rate spreads would come back."""
        if self.rate is not None:
            interval = 1.0 / self.rate.per_second(self.state.limit)
            drained = time.monotonic() + interval * (max(1, self.rate.burst) - 1)
            self._rate_tat = drained if self._rate_tat is None else max(self._rate_tat, drained)
        return self._refuse(method, f"{self.in_flight} calls in flight, its limit now {self.limit}")

    def _refuse(self, method: str, why: str) -> ResourceExhausted:
        self.state = refused(self.state)
        GRPC_REFUSED.labels(self.service, method).inc()
        return ResourceExhausted(
            f"the {self.service} service is at capacity ({why}); retry in {self._retry_after:g} s (with jitter), "
            "or add replicas",
            retry_after_seconds=self._retry_after,
        )

    def decided(self, metadata: Sequence[tuple[str, str | bytes]] | None, refused: bool) -> None:
        """How long the call waited before this process decided on it (gRPC's queue, mostly), when
        its caller stamped when it began (x-request-start; see core/request_start.py)."""
        for key, value in metadata or ():
            if key == REQUEST_START_HEADER:
                age = request_age_seconds(value if isinstance(value, str) else value.decode(), time.time())
                if age is not None:
                    self._queued["refused" if refused else "admitted"].observe(age)
                return

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        # Calls that passed `early_refusal` together may still find the limit reached here.
        if not admits(self.state, self.in_flight):
            refusal = self._refuse_at_limit(method)
            await read_unread_requests()
            context.set_trailing_metadata(trailing_metadata_for(refusal))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message)
        self.in_flight += 1
        self._in_flight_gauge.inc()
        _serving.set(self)  # not reset: the call's context ends with its task
        _admitted_at.set(time.monotonic())
        try:
            yield
            if self.state.congested:
                context.set_trailing_metadata((*(context.trailing_metadata() or ()), CONGESTED))
        finally:
            self.in_flight -= 1
            self._in_flight_gauge.dec()

    def observe_lag(self, now: float, lag: float) -> None:
        """One event-loop lag sample: recorded, and the limit moved when an interval ends."""
        self._lag.observe(lag)
        self._moved(self.state, observe_lag(self.policy, self.state, now, lag, self.in_flight))

    def _moved(self, before: adaptive_limit.LimitState, after: adaptive_limit.LimitState) -> None:
        self.state = after
        if after.limit != before.limit:
            self._limit_gauge.set(int(after.limit))
        if after.last_cut != before.last_cut:
            ADMISSION_CUTS.labels(self.service, after.cut_by).inc()

    def note_answer(self, answer: Answer) -> None:
        self._platform_share.observe(answer.share)
        self.state = adaptive_limit.answered(self.policy, self.state, answer)

    def note_upstream_refusal(self) -> None:
        self._moved(
            self.state, adaptive_limit.upstream_refused(self.policy, self.state, time.monotonic(), self.in_flight)
        )

    def note_upstream_congestion(self) -> None:
        self._moved(
            self.state, adaptive_limit.upstream_congested(self.policy, self.state, time.monotonic(), self.in_flight)
        )

    def idle(self, lag: float) -> bool:
        """No call in flight, not congested, and a lag under every threshold the policy judges it
        by: samples may come less often (core/loop_lag.py); the first that finds a call in flight or
        a lag that matters brings the short period back."""
        return self.in_flight == 0 and lag < self._quiet_lag and not self.state.congested

    async def watch_event_loop(self) -> None:
        """Sample this process's event-loop lag until cancelled (run it for the server's life)."""
        await sample_loop_lag(self.observe_lag, idle=self.idle)
