"""CPU time of a benchmark's processes, by name, read from /proc: the platform's services, and
the harness around them (load drivers, test doubles, database, cache, object store), so a bench
can say what each cost and whether the harness, not the platform, was the limit.

Only /proc, no third-party library. A group named in `trees` counts its processes' live
descendants too (PostgreSQL forks a backend per connection; the benches' connections are pooled,
so the backends live through a measured window); the others count their own processes only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (0 once it is gone)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children_by_parent() -> dict[int, list[int]]:
    """Parent pid -> its children's pids, for every process now alive."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
    return children


def tree_pids(roots: Iterable[int], children: Mapping[int, list[int]]) -> set[int]:
    """`roots` and all their descendants in `children` (parent -> children)."""
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


class CpuMeter:
    """CPU seconds used by named groups of processes between `start()` and `stop()` (also kept
    in `used`). A group is one pid or several; a group named in `trees` includes descendants."""

    def __init__(self, groups: Mapping[str, int | Iterable[int]], trees: Collection[str] = ()) -> None:
        self.groups = {name: [pids] if isinstance(pids, int) else list(pids) for name, pids in groups.items()}
        self.trees = frozenset(trees)
        self._before: dict[int, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        children = children_by_parent() if self.trees & self.groups.keys() else {}
        return {
            name: {
                pid: process_cpu_seconds(pid)
                for pid in (tree_pids(roots, children) if name in self.trees else set(roots))
            }
            for name, roots in self.groups.items()
        }

    def start(self) -> None:
        self._before = {pid: cpu for per_pid in self._read().values() for pid, cpu in per_pid.items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since `start()` (a process born meanwhile counts from its birth)."""
        self.used = {
            name: sum(max(0.0, cpu - self._before.get(pid, 0.0)) for pid, cpu in per_pid.items())
            for name, per_pid in self._read().items()
        }
        return self.used
