"""The gateway's admission limit and calls in flight through a benchmark level, sampled from its
/metrics twice a second on a thread: whether refusals came from a limit that fell (and when), or
from one that stayed where it started. Each scrape asks only for the four families it reads
(prometheus_client's `name[]` filter): a whole scrape cost the gateway ~2.4 ms of CPU (measured at
stop 16 with py-spy and /proc), ~0.1 ms per answer in the reference run (`--streams 100`) that the
"CPU ms per answer" line counted against the gateway although a 15-30 s Prometheus scrape would
not cost it; the filtered one renders a dozen lines instead of ~270."""

from __future__ import annotations

import itertools
import re
import statistics
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

_GAUGE = re.compile(r'^ragplatform_admission_(limit|in_flight)\{service="gateway"\} ([0-9.e+]+)$')
_CUTS = re.compile(r'^ragplatform_admission_cuts_total\{reason="(\w+)",service="gateway"\} ([0-9.e+]+)$')
# The metric families a sample reads: the scrape renders only these.
FAMILIES = (
    "ragplatform_admission_limit",
    "ragplatform_admission_in_flight",
    "ragplatform_admission_cuts_total",
    "ragplatform_grpc_server_refused_total",
)
_QUERY = urllib.parse.urlencode([("name[]", name) for name in FAMILIES])
_REFUSED = re.compile(r'^ragplatform_grpc_server_refused_total\{method="[^"]+",service="gateway"\} ([0-9.e+]+)$')


@dataclass
class Sample:
    at: float  # time.time()
    limit: float
    in_flight: float
    refused: float  # refused so far, every method
    cuts: dict[str, float]  # limit cuts so far, by reason


@dataclass
class AdmissionTrace:
    """Samples of the gateway's admission state every `period` s, between `__enter__` and `__exit__`."""

    metrics_port: int
    period: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _scrape(self) -> Sample | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics?{_QUERY}", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return None
        values = {"limit": float("nan"), "in_flight": float("nan")}
        refused = 0.0
        cuts: dict[str, float] = {}
        for line in text.splitlines():
            if match := _CUTS.match(line):
                cuts[match.group(1)] = float(match.group(2))
            elif match := _GAUGE.match(line):
                values[match.group(1)] = float(match.group(2))
            elif match := _REFUSED.match(line):
                refused += float(match.group(1))
        return Sample(time.time(), values["limit"], values["in_flight"], refused, cuts)

    def _run(self) -> None:
        while not self._stop.is_set():
            if (sample := self._scrape()) is not None:
                self.samples.append(sample)
            self._stop.wait(self.period)

    def __enter__(self) -> AdmissionTrace:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self, since: float, until: float) -> str:
        """One line: the limit at the start, its least, median and last value, calls in flight,
        and in how many of the window's seconds calls were refused."""
        window = [s for s in self.samples if since <= s.at <= until]
        if len(window) < 2:
            return "not sampled"
        limits = [s.limit for s in window]
        in_flight = [s.in_flight for s in window]
        refusing = sum(b.at - a.at for a, b in itertools.pairwise(window) if b.refused > a.refused)
        first, last = window[0].cuts, window[-1].cuts
        cuts = {reason: n - first.get(reason, 0.0) for reason, n in last.items() if n > first.get(reason, 0.0)}
        return (
            f"limit {limits[0]:.0f} at the start, least {min(limits):.0f}, median {statistics.median(limits):.0f}, "
            f"{limits[-1]:.0f} at the end; in flight median {statistics.median(in_flight):.0f}, most "
            f"{max(in_flight):.0f}; refusing in {refusing:.0f} of {until - since:.0f} s; cut "
            + (", ".join(f"{n:.0f}x by {reason}" for reason, n in sorted(cuts.items())) or "never")
        )
