"""What the harness around the platform cost in a measured window of bench/ask_throughput.py, and
whether it, rather than the platform, may have set the latencies.

The harness (load drivers, the LLM and embedding doubles, PostgreSQL, PgBouncer, Redis, moto S3)
runs on CPUs of its own. When those are nearly saturated, every figure measured by the clock
mixes the platform's queueing with the harness's: a driver reads an answer late, a double sends
its tokens late. So each level prints the harness's CPU per component and per call, the share of
its CPUs it used, and a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DRIVERS = "load drivers"
# Harness CPUs busier than this (everything on them, other work included): latencies by the
# clock include the harness's own queueing.
CONTAMINATED_BUSY = 0.85


@dataclass
class Harness:
    """The harness's processes (name -> root pids; the drivers are added per level), and each
    level's (asks begun, refusals, driver CPU ms) so far: two levels with different shares of
    refusals tell the drivers' CPU per ask and per refusal apart."""

    pids: dict[str, list[int]]
    driver_levels: list[tuple[int, int, float]] = field(default_factory=list)

    def driver_costs(self) -> tuple[float, float] | None:
        """(ms per answered call, ms per refused call) solved from the first level and the one
        whose share of refusals differs from it most; None with fewer than two such levels."""
        if len(self.driver_levels) < 2:
            return None
        (a1, r1, d1) = self.driver_levels[0]
        (a2, r2, d2) = max(self.driver_levels[1:], key=lambda x: abs(x[1] / max(1, sum(x[:2])) - r1 / max(1, a1 + r1)))
        determinant = a1 * r2 - a2 * r1
        if abs(determinant) < 0.05 * (a1 + r1) * (a2 + r2):
            return None
        return (d1 * r2 - d2 * r1) / determinant, (a1 * d2 - a2 * d1) / determinant

    def report(
        self,
        used: dict[str, float],
        window: float,
        answered: int,
        calls: int,
        refused: int,
        cpus: int,
        busy: float,
    ) -> None:
        """Print the harness's figures for one level: `used` CPU seconds per component over
        `window` seconds, in which the drivers began `calls` calls (asks and uploads), of which
        `answered` asks were answered and `refused` calls refused; `busy` is the harness CPUs'
        busy share (everything on them) and `cpus` their count."""
        drivers = used.get(DRIVERS, 0.0)
        ours = sum(used.values())
        self.driver_levels.append((calls - refused, refused, 1000 * drivers))
        driver_line = (
            f"{DRIVERS} {1000 * drivers / window:.0f} ms/s = {1000 * drivers / max(1, calls):.2f} ms per call "
            f"({calls} calls, {refused} refused)"
        )
        if (costs := self.driver_costs()) is not None and min(costs) > 0:  # else: noise, not a figure
            driver_line += f"; from the levels so far ~{costs[0]:.2f} ms per answered call, ~{costs[1]:.2f} per refusal"
        others = "  ".join(
            f"{name} {1000 * seconds / max(1, answered):.2f}" for name, seconds in used.items() if name != DRIVERS
        )
        print(f"  harness CPU        {driver_line}")
        print(f"                     per answer (ms): {others}")
        share = ours / (window * cpus)
        verdict = (
            "clean: they had time to spare"
            if busy <= CONTAMINATED_BUSY
            else "CONTAMINATED: latencies by the clock include the harness's own queueing"
        )
        print(
            f"  harness load       ours {ours / window:.2f} cores = {100 * share:.0f} % of the {cpus} harness "
            f"CPU(s), other work {100 * max(0.0, busy - share):.0f} %, busy {100 * busy:.0f} % in all; {verdict}"
        )
