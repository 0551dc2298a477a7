"""The generic cell rate algorithm (GCRA): the rate limiter both cache adapters implement, and the
admission rate of core/interceptors/admission.py.

State per key is one number, the theoretical arrival time (TAT) of the next request. With
emission interval T = 1 / rate and tolerance tau = T * burst, a request at time `now` is allowed
when `max(TAT, now) + T - tau <= now`; then TAT becomes `max(TAT, now) + T`. So `burst` requests
pass at once from idle, then one every T seconds. A refused request changes nothing.
The Redis adapter runs the same arithmetic inside one Lua script (`backends/cache/redis.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GcraDecision:
    retry_after: float  # 0.0 when allowed
    new_tat: float  # the state to store when allowed (unchanged when refused)


def gcra(tat: float | None, now: float, rate_per_second: float, burst: int) -> GcraDecision:
    """Decide one request. `tat` is the stored state (None for a key never seen)."""
    interval = 1.0 / rate_per_second
    tolerance = interval * max(1, burst)
    start = now if tat is None or tat < now else tat
    new_tat = start + interval
    allow_at = new_tat - tolerance
    if allow_at > now:
        return GcraDecision(retry_after=allow_at - now, new_tat=start if tat is not None else now)
    return GcraDecision(retry_after=0.0, new_tat=new_tat)
