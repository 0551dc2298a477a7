"""The queue-depth autoscaler of the ingestion workers, as pure functions.

`decide(policy, state, queue_depth, now)` is the whole algorithm; it reads no clock and no
cluster, so the same inputs always give the same decision (the property tests rely on that).

The rules, in order:

* the recommendation is `ceil(depth / targetQueueDepthPerReplica)`, clamped to
  `[minReplicas, maxReplicas]`;
* from zero workers, the recommendation stays 0 unless the depth is *above*
  `activationQueueDepth` (KEDA's activation semantics, as the CRD documents it);
* replicas outside new bounds (an SRE patched min/max) are brought inside at once;
* a higher recommendation is applied once it has been wanted for the scale-up window (0: at
  once), and then to the *lowest* recommendation seen in that window;
* a lower recommendation is applied only once it has been wanted for the whole scale-down
  window, and then to the *highest* recommendation seen in that window, so a brief dip never
  kills workers that are about to be needed again (the HorizontalPodAutoscaler's stabilisation
  behaviour, applied to queue depth).

The state the rules need (when a higher or lower count started being wanted, and the extreme
recommendation since) is small and serialisable, so the operator persists it in the
RagPlatform's status and a restarted operator carries on where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class ScalingPolicy:
    """The bounds and targets the autoscaler works within (from `spec.workers.autoscaling`)."""

    min_replicas: int
    max_replicas: int
    target_per_replica: int
    activation_queue_depth: int = 0
    scale_up_window_seconds: float = 0.0
    scale_down_window_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= minReplicas <= maxReplicas, got {self.min_replicas}..{self.max_replicas}")
        if self.target_per_replica < 1:
            raise ValueError(f"targetQueueDepthPerReplica must be at least 1, got {self.target_per_replica}")


@dataclass(frozen=True)
class ScalingState:
    """What the autoscaler remembers between two decisions.

    `replicas` is the worker count in force. `up_since`/`up_floor` track a pending scale-up (the
    time a higher count was first wanted and the lowest such recommendation since);
    `down_since`/`down_peak` a pending scale-down (the highest lower recommendation since).
    """

    replicas: int
    up_since: datetime | None = None
    up_floor: int | None = None
    down_since: datetime | None = None
    down_peak: int | None = None

    def to_status(self) -> dict[str, Any]:
        """A JSON-able form for the RagPlatform's status (camelCase, ISO times, no nulls)."""
        out: dict[str, Any] = {"replicas": self.replicas}
        if self.up_since is not None:
            out["scaleUpPendingSince"] = self.up_since.isoformat()
            out["scaleUpFloor"] = self.up_floor
        if self.down_since is not None:
            out["scaleDownPendingSince"] = self.down_since.isoformat()
            out["scaleDownPeak"] = self.down_peak
        return out

    @classmethod
    def from_status(cls, raw: dict[str, Any] | None, default_replicas: int) -> ScalingState:
        """The inverse of `to_status`; a missing or unreadable record gives a fresh state."""
        if not raw or not isinstance(raw.get("replicas"), int):
            return cls(replicas=default_replicas)
        try:
            up_since = datetime.fromisoformat(raw["scaleUpPendingSince"]) if "scaleUpPendingSince" in raw else None
            down_since = (
                datetime.fromisoformat(raw["scaleDownPendingSince"]) if "scaleDownPendingSince" in raw else None
            )
        except (TypeError, ValueError):
            return cls(replicas=raw["replicas"])
        return cls(
            replicas=raw["replicas"],
            up_since=up_since,
            up_floor=raw.get("scaleUpFloor") if up_since else None,
            down_since=down_since,
            down_peak=raw.get("scaleDownPeak") if down_since else None,
        )


class ScalingReason(StrEnum):
    """Why a decision came out as it did; used as the Event and status reason."""

    SCALED_UP = "ScaledUp"
    SCALED_FROM_ZERO = "ScaledFromZero"
    SCALED_DOWN = "ScaledDown"
    SCALED_TO_ZERO = "ScaledToZero"
    BOUNDS_CHANGED = "BoundsChanged"
    SCALE_UP_STABILIZING = "ScaleUpStabilizing"
    SCALE_DOWN_STABILIZING = "ScaleDownStabilizing"
    BELOW_ACTIVATION = "BelowActivation"
    STEADY = "Steady"


@dataclass(frozen=True)
class ScalingDecision:
    """One autoscaler decision: the replicas to run now, why, and the state to keep."""

    previous_replicas: int
    replicas: int
    recommendation: int
    queue_depth: int
    reason: ScalingReason
    message: str
    state: ScalingState

    @property
    def changed(self) -> bool:
        """True when the worker count changes (the operator emits an Event and patches)."""
        return self.replicas != self.previous_replicas


def recommend(policy: ScalingPolicy, current: int, queue_depth: int) -> int:
    """The replica count the queue depth asks for, before any stabilisation."""
    if current == 0 and queue_depth <= policy.activation_queue_depth:
        return policy.min_replicas
    wanted = math.ceil(max(queue_depth, 0) / policy.target_per_replica)
    return max(policy.min_replicas, min(policy.max_replicas, wanted))


def _elapsed(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


def decide(policy: ScalingPolicy, state: ScalingState, queue_depth: int, now: datetime) -> ScalingDecision:
    """The next decision for `queue_depth` observed at `now`, given the previous `state`.

    The result's `replicas` is always within the policy's bounds.
    """
    current = state.replicas
    depth = max(queue_depth, 0)
    per = policy.target_per_replica

    def result(replicas: int, reason: ScalingReason, message: str, new_state: ScalingState) -> ScalingDecision:
        return ScalingDecision(current, replicas, wanted, depth, reason, message, new_state)

    wanted = recommend(policy, current, depth)

    # An SRE narrowed the bounds: obey them now, whatever the windows say.
    if not policy.min_replicas <= current <= policy.max_replicas:
        clamped = max(policy.min_replicas, min(policy.max_replicas, current))
        return result(
            clamped,
            ScalingReason.BOUNDS_CHANGED,
            f"{current} workers are outside the bounds {policy.min_replicas}..{policy.max_replicas}; now {clamped}",
            ScalingState(replicas=clamped),
        )

    if wanted == current:
        if current == 0 and depth > 0:
            message = (
                f"queue depth {depth} is not above the activation threshold "
                f"{policy.activation_queue_depth}; staying at 0 workers"
            )
            return result(0, ScalingReason.BELOW_ACTIVATION, message, ScalingState(replicas=0))
        return result(
            current,
            ScalingReason.STEADY,
            f"queue depth {depth} wants {wanted} workers at {per} per worker; running {current}",
            ScalingState(replicas=current),
        )

    if wanted > current:
        since = state.up_since or now
        floor = wanted if state.up_floor is None else min(state.up_floor, wanted)
        if _elapsed(since, now) >= policy.scale_up_window_seconds:
            reason = ScalingReason.SCALED_FROM_ZERO if current == 0 else ScalingReason.SCALED_UP
            return result(
                floor,
                reason,
                f"queue depth {depth} at {per} per worker wants {wanted} workers; scaled {current} -> {floor}",
                ScalingState(replicas=floor),
            )
        return result(
            current,
            ScalingReason.SCALE_UP_STABILIZING,
            f"queue depth {depth} wants {wanted} workers; scaling up once that has held for "
            f"{policy.scale_up_window_seconds:g}s (for {_elapsed(since, now):.0f}s so far)",
            ScalingState(replicas=current, up_since=since, up_floor=floor),
        )

    since = state.down_since or now
    peak = wanted if state.down_peak is None else max(state.down_peak, wanted)
    if _elapsed(since, now) >= policy.scale_down_window_seconds:
        reason = ScalingReason.SCALED_TO_ZERO if peak == 0 else ScalingReason.SCALED_DOWN
        # A count still lower than the one just applied starts a fresh window from now.
        next_state = ScalingState(replicas=peak)
        if wanted < peak:
            next_state = replace(next_state, down_since=now, down_peak=wanted)
        return result(
            peak,
            reason,
            f"queue depth {depth} has wanted at most {peak} workers for "
            f"{policy.scale_down_window_seconds:g}s; scaled {current} -> {peak}",
            next_state,
        )
    return result(
        current,
        ScalingReason.SCALE_DOWN_STABILIZING,
        f"queue depth {depth} wants {wanted} workers; scaling down once that has held for "
        f"{policy.scale_down_window_seconds:g}s (for {_elapsed(since, now):.0f}s so far)",
        ScalingState(replicas=current, down_since=since, down_peak=peak),
    )
