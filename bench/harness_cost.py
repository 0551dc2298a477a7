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
    """The harness's processes (name -> root pids; the drivers are added per level), and the load
    drivers' CPU per ask as measured at the last level where few calls were refused (so that the
    cost of a refusal can be told apart at levels with many)."""

    pids: dict[str, list[int]]
    driver_ms_per_ask: float | None = None
    lines: list[str] = field(default_factory=list)

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
        per_call = 1000 * drivers / max(1, calls)
        driver_line = f"{DRIVERS} {1000 * drivers / window:.0f} ms/s = {per_call:.2f} ms per call ({calls} calls"
        if refused <= 0.1 * calls:
            self.driver_ms_per_ask = per_call
            driver_line += ")"
        elif self.driver_ms_per_ask is not None:
            # The asks cost what they cost where few were refused; the rest is the refusals'.
            asks = calls - refused
            per_refusal = (1000 * drivers - asks * self.driver_ms_per_ask) / refused
            driver_line += (
                f", {refused} refused: ~{per_refusal:.2f} ms per refusal, {self.driver_ms_per_ask:.2f} per ask)"
            )
        else:
            driver_line += f", {refused} refused)"
        others = "  ".join(
            f"{name} {1000 * seconds / max(1, answered):.2f}" for name, seconds in used.items() if name != DRIVERS
        )
        print(f"  harness CPU        {driver_line}")
        print(f"                     per answer (ms): {others}")
        share = ours / (window * cpus)
        verdict = (
            "CONTAMINATED: latencies by the clock include the harness's own queueing"
            if busy > CONTAMINATED_BUSY
            else "clean: the harness had CPU to spare"
        )
        print(
            f"  harness load       ours {ours / window:.2f} cores = {100 * share:.0f} % of the {cpus} harness "
            f"CPU(s); {100 * busy:.0f} % busy with other work; {verdict}"
        )
