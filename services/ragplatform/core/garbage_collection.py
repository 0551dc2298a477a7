"""The cyclic garbage collector of a serving process: startup's objects frozen, young collections
rarer.

A service allocates thousands of short-lived container objects per call (coroutines, frames,
dicts, gRPC call state), so with CPython's default thresholds (700, 10, 10) its collector runs a
young collection every few calls and a full one every few hundred — and each full one walks every
object the process holds, most of them modules, classes and functions imported at startup that
will never be garbage. Under Ask load that was ~6.5 % of generation's CPU and ~2.4 % of the
gateway's (a `gc.callbacks` probe, docs/performance.md). Freezing what exists once the server is
up moves those objects out of the collector's reach (`gc.freeze`, as CPython's docs recommend
for long-lived servers), and a larger first threshold makes young collections rarer; reference
counting still frees the non-cyclic garbage at once, so memory grows only by the cycles a young
collection would have found sooner.
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) of container objects between young collections; CPython's
# default is 700. Older generations keep their default ratios.
YOUNG_THRESHOLD = 20_000


def settle_after_startup(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect once, freeze every object that survives (the process's startup state), and raise
    the young-generation threshold. Call once the server is serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
