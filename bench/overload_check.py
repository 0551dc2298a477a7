"""Issue 8's overload lines, judged on one open-loop level of bench/ask_throughput.py (pure).

* Overload — a level at 3x or more of the capacity (the sustainable rate bench/capacity_search.py
  found, or one given with --capacity): every refusal carries a retry-after hint and arrives
  within 50 ms at p99; asks that were accepted keep p99 within the LLM's latency + 250 ms; none
  ends CANCELLED or DEADLINE_EXCEEDED.
* The seeds' shape — a level at 0.8x or less with at least 5,000 users and 500 uploaders: no error
  and no refusal (asks or uploads), p99 added over the LLM within 250 ms, total RSS within 1 GiB.

The issue is judged with the platform's defaults: `settings_used` names every setting the run
changed (`--env`, `--nice`), and the verdict says so when there are any.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REFUSAL_P99_SECONDS = 0.05
ADDED_P99_SECONDS = 0.25
RSS_MIB = 1024.0
OVERLOAD_FACTOR = 3.0
SEEDS_FACTOR = 0.8
SEEDS_USERS = 5000
SEEDS_UPLOADERS = 500
LOST = ("CANCELLED", "DEADLINE_EXCEEDED")


@dataclass(frozen=True)
class LevelFigures:
    """What one open-loop level measured (asks unless said otherwise)."""

    of_capacity: float  # the level's rate over the sustained rate (0: an absolute rate)
    users: int
    uploaders: int
    refused: int  # refused with a retry-after hint
    refused_without_hint: int
    refusal_p99_seconds: float
    added_p99_seconds: float  # accepted and answered asks, over the LLM's latency
    errors: Mapping[str, int]  # status -> asks that ended with it (refusals without a hint included)
    upload_errors: Mapping[str, int]
    upload_refusals: int
    rss_total_mib: float


def judged_lines(figures: LevelFigures) -> list[tuple[str, bool]]:
    """Each line of the issue this level is judged on, and whether it was met (none for a level
    that is neither the overload nor the seeds' shape)."""
    if figures.of_capacity >= OVERLOAD_FACTOR:
        lost = sum(figures.errors.get(status, 0) for status in LOST)
        return [
            (
                f"every refusal with a retry hint ({figures.refused_without_hint} without)",
                not figures.refused_without_hint,
            ),
            (
                f"refusals p99 {1000 * figures.refusal_p99_seconds:.0f} ms <= {1000 * REFUSAL_P99_SECONDS:.0f} ms",
                figures.refusal_p99_seconds <= REFUSAL_P99_SECONDS,
            ),
            (
                f"accepted asks p99 LLM + {figures.added_p99_seconds:.2f} s <= LLM + {ADDED_P99_SECONDS:g} s",
                figures.added_p99_seconds <= ADDED_P99_SECONDS,
            ),
            (f"{lost} CANCELLED/DEADLINE_EXCEEDED == 0", lost == 0),
        ]
    seeds = figures.users >= SEEDS_USERS and figures.uploaders >= SEEDS_UPLOADERS
    if 0 < figures.of_capacity <= SEEDS_FACTOR and seeds:
        # The ask bench counts a refused upload under upload_errors["refused"] too: counted once, as refused.
        upload_errors = sum(n for status, n in figures.upload_errors.items() if status != "refused")
        errors = sum(figures.errors.values()) + upload_errors
        refused = figures.refused + figures.upload_refusals
        return [
            (f"{errors} errors == 0", errors == 0),
            (f"{refused} refused (asks and uploads) == 0", refused == 0),
            (
                f"p99 added {figures.added_p99_seconds:.2f} s <= {ADDED_P99_SECONDS:g} s",
                figures.added_p99_seconds <= ADDED_P99_SECONDS,
            ),
            (f"total RSS {figures.rss_total_mib:.0f} MiB <= {RSS_MIB:.0f} MiB", figures.rss_total_mib <= RSS_MIB),
        ]
    return []


def verdict(figures: LevelFigures, settings_used: Sequence[str]) -> str | None:
    """One line for the level (None if the issue does not judge it): met or NOT MET, each line
    marked, and the settings that were not the defaults."""
    lines = judged_lines(figures)
    if not lines:
        return None
    name = "3x overload" if figures.of_capacity >= OVERLOAD_FACTOR else "seeds' shape at 0.8x"
    met = all(ok for _, ok in lines)
    marked = "; ".join(f"{text} [{'ok' if ok else 'NO'}]" for text, ok in lines)
    settings = (
        f" — with non-default settings {', '.join(settings_used)}: not the issue's check"
        if settings_used
        else " — with the defaults"
    )
    return f"issue 8, {name}: {'met' if met else 'NOT MET'}: {marked}{settings}"
