"""Event-loop lag: how late the running loop wakes a timer, sampled for as long as it runs.

The lag is the process's queueing delay (see core/adaptive_limit.py): every ready callback waits
about that long for the loop, whether it is waiting for its CPU share or behind other callbacks.

Each sample is a wake-up of its own when the loop has nothing else to do, and on a VM a loop
woken from idle costs ~60-180 µs of CPU: 40 samples a second cost an idle process ~5-7 ms of CPU
a second (docs/performance.md). So while the caller says the process is idle (no call in flight
and a lag that moves nothing), the sampler waits `idle_period` instead of `period`; the first
sample that finds a call in flight, or a lag that matters, brings the short period back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# A sample every 25 ms: the admission limit moves every 100 ms on the smallest of ~4 samples.
SAMPLE_SECONDS = 0.025
# ... and every 200 ms while idle: 5 wake-ups a second instead of 40. A burst that finds the process
# idle is seen by the next sample at the latest (whose own lateness shows the burst's lag).
IDLE_SAMPLE_SECONDS = 0.2


async def sample_loop_lag(
    on_sample: Callable[[float, float], None],
    period: float = SAMPLE_SECONDS,
    idle: Callable[[float], bool] = lambda lag: False,
    idle_period: float = IDLE_SAMPLE_SECONDS,
) -> None:
    """Call `on_sample(now, lag_seconds)` about every `period` seconds, until cancelled (`now` is
    the loop's monotonic clock) — every `idle_period` seconds after a sample for which
    `idle(lag_seconds)` (asked after `on_sample`) is true. An exception from either ends it.

    Each sample is a timer callback, not a task waking from `asyncio.sleep`: no future and no task
    step per sample (~115-125 µs of CPU a sample instead of ~150-160 on an idle uvloop loop)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    handle: asyncio.TimerHandle | None = None

    def sample(asked: float, wait: float) -> None:
        nonlocal handle
        try:
            now = loop.time()
            lag = max(0.0, now - asked - wait)
            on_sample(now, lag)
            wait = idle_period if idle(lag) else period
            asked = loop.time()
            handle = loop.call_at(asked + wait, sample, asked, wait)
        except Exception as exc:  # to the awaiting caller (interrupts propagate from the loop itself)
            if not ended.done():
                ended.set_exception(exc)

    asked = loop.time()
    handle = loop.call_at(asked + period, sample, asked, period)
    try:
        await ended
    finally:
        handle.cancel()
