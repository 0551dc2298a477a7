"""The sustainable rate of the Ask path, found by a bounded search (pure: no clock, no I/O).

"Capacity" in issue 8's lines ("at 3x the sustainable rate", "at 80 % of capacity") is read as
an SLO defines it: the highest arrival rate the platform serves with nothing refused, no error
and p99 added latency over the model within `ADDED_P99_SECONDS` (250 ms) — not the most asks a
saturated closed loop squeezes through, which on this bench came with +1.5 s at p99 and the
admission limit at its ceiling (docs/performance.md, "Measuring").

The search runs open-loop steps (arrivals at a set rate whatever the platform does, as users
arrive) and moves as a bracketing search does: from `start`, up by `growth` while steps pass,
down by it while they fail, then bisecting between the best rate that passed and the least that
failed, for at most `steps` steps or until the bracket is within `precision`. What it found is
the best rate that passed (0 when none did).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ADDED_P99_SECONDS = 0.25


@dataclass(frozen=True)
class SearchPolicy:
    start: float = 40.0  # asks/s of the first step
    growth: float = 1.5  # each step's rate over (or under) the last while unbracketed
    steps: int = 6  # steps at most
    precision: float = 0.08  # stop once (least failed - best passed) / best passed is within this
    least: float = 1.0  # never a step under this rate


@dataclass(frozen=True)
class Step:
    """What one open-loop step measured (asks unless said otherwise)."""

    rate: float  # the arrival rate asked for
    answered: int
    refused: int  # asks and uploads refused (with a hint or without)
    errors: int  # asks and uploads that failed otherwise
    added_p99_seconds: float  # over the model's latency, of the asks answered
    measured_seconds: float = 1.0  # how long the step was measured

    @property
    def answered_per_second(self) -> float:
        return self.answered / self.measured_seconds

    def failures(self) -> list[str]:
        """Why this step was not sustainable (empty: it was)."""
        why = []
        if not self.answered:
            why.append("nothing answered")
        if self.refused:
            why.append(f"{self.refused} refused")
        if self.errors:
            why.append(f"{self.errors} errors")
        if self.answered and not self.added_p99_seconds <= ADDED_P99_SECONDS:
            why.append(f"p99 added {self.added_p99_seconds:.3f} s > {ADDED_P99_SECONDS:g} s")
        return why

    @property
    def sustained(self) -> bool:
        return not self.failures()


def bracket(steps: Sequence[Step]) -> tuple[float, float]:
    """(the best rate that passed or 0, the least rate that failed above it or inf)."""
    best = max((s.rate for s in steps if s.sustained), default=0.0)
    above = [s.rate for s in steps if not s.sustained and s.rate > best]
    return best, min(above, default=math.inf)


def next_rate(policy: SearchPolicy, steps: Sequence[Step]) -> float | None:
    """The rate of the next step, or None when the search is done."""
    if not steps:
        return policy.start
    if len(steps) >= policy.steps:
        return None
    best, failed = bracket(steps)
    if best and failed < math.inf:
        return None if (failed - best) / best <= policy.precision else (best + failed) / 2
    if best:  # everything passed so far: go up
        return best * policy.growth
    lowest = min(s.rate for s in steps)  # everything failed so far: go down
    return None if lowest <= policy.least else max(policy.least, lowest / policy.growth)


def found(steps: Sequence[Step]) -> float:
    """The sustainable rate the steps show: the best rate that passed (0 when none did)."""
    return bracket(steps)[0]
