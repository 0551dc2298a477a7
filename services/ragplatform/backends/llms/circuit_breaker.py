"""A small circuit breaker: after enough consecutive failures, stop calling a failing endpoint
for a cool-down, then let one trial call through. Pure: the clock is injected, nothing sleeps.

Why: when a model endpoint is down, every request would otherwise wait for its full timeout
(and retries) before failing; with the breaker open, requests fail fast (or go straight to the
fallback model) and the endpoint is not hammered while it recovers.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # calls flow; failures are counted
    OPEN = "open"  # calls are refused until the cool-down ends
    HALF_OPEN = "half_open"  # one trial call is in flight; its outcome closes or reopens


class CircuitBreaker:
    """Callers may rely on: `allow()` is True while closed; False while open until
    `cooldown_seconds` after the last failure; then True for exactly one trial call (half-open)
    until that call's `record_success()` (closes) or `record_failure()` (opens again)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial_in_flight or self._clock() - self._opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go ahead now. In half-open state the first caller gets True (and
        becomes the trial); the others get False until the trial reports back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until a call may be tried again (0 when one may be tried now)."""
        if self._opened_at is None or self._trial_in_flight:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_in_flight or self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    def release(self) -> None:
        """Forget an allowed call that ended with neither success nor failure (cancelled by the
        caller), so a half-open breaker can admit another trial."""
        self._trial_in_flight = False
