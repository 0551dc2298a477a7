"""Event-loop lag: how late the running loop wakes a timer, sampled for as long as it runs.

The lag is the process's queueing delay (see core/adaptive_limit.py): every ready callback waits
about that long for the loop, whether it is waiting for its CPU share or behind other callbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# A sample every 25 ms: the admission limit moves every 100 ms on the smallest of ~4 samples, and
# 40 wake-ups a second cost a process well under 1 ms of CPU a second.
SAMPLE_SECONDS = 0.025


async def sample_loop_lag(on_sample: Callable[[float, float], None], period: float = SAMPLE_SECONDS) -> None:
    """Call `on_sample(now, lag_seconds)` about every `period` seconds, until cancelled (`now` is
    the loop's monotonic clock)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(period)
        now = loop.time()
        on_sample(now, max(0.0, now - asked - period))
