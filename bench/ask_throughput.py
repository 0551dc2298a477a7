"""Ask throughput and latency in the production shape: every service its own process on
PostgreSQL 15 (through PgBouncer, transaction pooling), Redis 7 (queue, rate limits) and moto S3,
with answers from the OpenAI-compatible TEST DOUBLE at a fixed LLM latency (2 s by default) and
embeddings from a second instance of it without that latency — so the figures are what the
platform adds around the model.

    python bench/ask_throughput.py [--streams 100 1000 5500] [--duration 25] [--drivers 2]
    python bench/ask_throughput.py --streams --open-loop 5000:30:500   (5,000 askers, 500 uploaders)
    python bench/ask_throughput.py --streams 100 --follow-ups 0.5   (half the asks continue a conversation)
    python bench/ask_throughput.py --sustainable 5000:500 --open-loop 5000:3x --open-loop 5000:0.8x:500
        (the sustainable rate by a bounded search, then issue 8's levels at 3x and 0.8x of it)

Closed loop (`--streams N`): `--drivers` client processes keep N Ask streams open, each asking
again as soon as its answer is done, over a fixed pool of gRPC channels, for `--duration`
seconds; the first `--warmup` seconds are not measured. Open loop (`--open-loop
USERS:RATE[:UPLOADERS]`): USERS connected users, each thinking for an exponentially distributed
time between its asks, so that together they ask RATE times a second whatever the platform does
(a refused user waits the retry-after the gateway names, plus jitter), beside UPLOADERS users
(default `--uploaders`) that each upload a small document every `--upload-think` s on average.

The services run on `--service-cpus` and everything else (drivers, LLM doubles, PostgreSQL,
PgBouncer, Redis, moto) on `--harness-cpus`, so the services' CPU time is theirs alone. Beside the
load, the same run measures the floor of each hop (bench/hop_floor.py: a grpc.aio echo's unary
round trip and streamed message, a SQL statement, a Redis command) and counts the hops of an
Ask (gRPC calls from the services' metrics, streamed messages, SQL statements from PgBouncer's
SHOW STATS, Redis commands from INFO), so it prints CPU per answer and its ratio to the floor.

Every question is distinct and the answer cache is off (RAG_ANSWER_CACHE_TTL_SECONDS=0), so every
ask takes the whole path:
auth, rate limit (Redis), conversation (PostgreSQL), retrieval (query embedding at the endpoint
+ vector search), generation (streamed from the endpoint), both turns stored.

Printed per level: asks/s sustained, p50/p99 total latency and latency added over the LLM's own,
errors by gRPC status, refusals (RESOURCE_EXHAUSTED/UNAVAILABLE with a retry-after hint) and how
fast they came, peak RSS of each service process, CPU ms per answer per service, hops per answer
and the ratio to the floor. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.admission_trace import AdmissionTrace
from bench.capacity_search import ADDED_P99_SECONDS, SearchPolicy, Step, bracket, found, next_rate
from bench.cpu_weights import operator_niceness
from bench.harness_cost import DRIVERS, Harness
from bench.hop_floor import Floor, measure_backend_floor, measure_floor, parse_cpus
from bench.overload_check import LevelFigures, verdict
from bench.process_cpu import CpuMeter
from ragplatform.client import TERMINAL_STATES, GatewayClient
from ragplatform.core.error_mapping import retry_after_from
from ragplatform.core.event_loop import run as run_loop
from ragplatform.core.request_start import REQUEST_START_HEADER, request_start_value
from ragplatform.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support.platform_processes import SERVICES, PlatformProcesses, ProductionBackends, free_port

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "docs" / "corpus"
QUESTIONS = [
    "What is the maximum pressure of the Zephyr-9 pump?",
    "What is the maximum flight time of the Kestrel X2 drone?",
    "When does the first ferry leave Harbor City?",
    "What does the Aurora cafe serve?",
    "What did the Nordlys station log record?",
]
# Streams per client HTTP/2 connection (as many client pods would open); --streams-per-channel.
STREAMS_PER_CHANNEL = int(os.environ.get("BENCH_STREAMS_PER_CHANNEL", "100"))
ASK_DEADLINE_SECONDS = 60.0
UPLOAD_DEADLINE_SECONDS = 30.0
ASK_PATH = ("gateway", "conversation", "retrieval", "generation")
REFUSALS = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
# A closed-loop level that refused calls with its services' CPUs less busy than this measured the
# admission limit's ceiling, not the CPU's capacity.
CPU_BOUND_BUSY = 0.9


# --- the client side (runs in driver processes) -------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one driver process does: `streams` closed-loop streams, or `users` open-loop users
    asking `rate` times a second together, plus `uploaders` users uploading now and then."""

    gateway: str
    key: str
    start_at: float
    measure_from: float
    end_at: float
    streams: int = 0
    users: int = 0
    rate: float = 0.0
    uploaders: int = 0
    upload_think: float = 10.0
    llm: float = 2.0
    # The share of a closed-loop stream's asks that follow up its previous answer's conversation.
    follow_ups: float = 0.0


@dataclass
class DriverResult:
    latencies: list[float] = field(default_factory=list)  # asks finished inside the window
    to_sources: list[float] = field(default_factory=list)  # ... their time to the sources message
    to_first_token: list[float] = field(default_factory=list)  # ... and to the first answer delta
    messages: int = 0  # messages those asks received
    errors: Counter[str] = field(default_factory=Counter)  # status -> count (inside the window)
    error_examples: dict[str, str] = field(default_factory=dict)
    refusals: list[float] = field(default_factory=list)  # seconds until a refusal arrived
    refusals_without_hint: int = 0
    started: int = 0  # asks begun inside the window (the arrival rate)
    uploads: list[float] = field(default_factory=list)
    upload_errors: Counter[str] = field(default_factory=Counter)
    uploads_started: int = 0  # uploads begun inside the window
    upload_refusals: int = 0  # ... refused with a retry-after hint
    driver_lags: list[float] = field(default_factory=list)  # this driver's own event-loop lag samples


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _drive(load: Load) -> DriverResult:
    result = DriverResult()
    connections = max(load.streams, load.users) + load.uploaders
    channels = [
        # A channel each, not a shared subchannel: separate connections like separate clients.
        grpc.aio.insecure_channel(load.gateway, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, (connections + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL))
    ]
    stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
    metadata = (("authorization", f"Bearer {load.key}"),)
    counter = 0

    def inside(t: float) -> bool:
        return load.measure_from <= t <= load.end_at

    async def ask(stub: gateway_pb2_grpc.GatewayServiceStub, conversation: list[str] | None = None) -> float:
        """One ask; returns how long to back off (0 when it was answered). With `conversation`
        (a stream's last conversation id, kept up to date here), a `follow_ups` share of the asks
        continue it."""
        nonlocal counter
        counter += 1
        question = f"{QUESTIONS[counter % len(QUESTIONS)]} (ask {os.getpid()}-{counter})"
        follow_up = conversation[0] if conversation and random.random() < load.follow_ups else ""
        began = time.time()
        if inside(began):
            result.started += 1
        status, detail, hint = "OK", "", None
        sources_at = first_token_at = 0.0
        received = 0
        try:
            # Stamped as a proxy would: the gateway's metrics then show the wait in front of it.
            stamped = (*metadata, (REQUEST_START_HEADER, request_start_value(began)))
            request = gateway_pb2.AskRequest(question=question, conversation_id=follow_up)
            call = stub.Ask(request, metadata=stamped, timeout=ASK_DEADLINE_SECONDS)
            async for message in call:
                received += 1
                kind = message.WhichOneof("event")
                if kind == "done" and conversation is not None:
                    conversation[:] = [message.done.conversation_id]
                if kind == "sources":
                    sources_at = time.time()
                elif kind == "delta" and not first_token_at:
                    first_token_at = time.time()
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
            hint = retry_after_from(exc.trailing_metadata())
            detail = f"{exc.details()} (after {time.time() - began:.2f} s and {received} messages)"
        finished = time.time()
        if inside(finished):
            if status == "OK":
                result.latencies.append(finished - began)
                result.to_sources.append(sources_at - began)
                result.to_first_token.append(first_token_at - began)
                result.messages += received
            elif status in REFUSALS and received == 0 and hint is not None:
                result.refusals.append(finished - began)
            else:
                if status in REFUSALS and received == 0:
                    result.refusals_without_hint += 1
                result.errors[status] += 1
                result.error_examples.setdefault(status, detail[:300])
        if status == "OK":
            return 0.0
        # A refused or failing client backs off (the hint when given) with jitter, as real ones do.
        return (hint if hint is not None else 0.5) * random.uniform(1.0, 1.5)

    async def closed_loop(index: int) -> None:
        stub = stubs[index % len(stubs)]
        conversation: list[str] = []
        # Spread the first asks over one LLM latency so the streams do not move in lockstep.
        await asyncio.sleep(max(0.0, load.start_at - time.time()) + random.uniform(0.0, load.llm))
        while time.time() < load.end_at:  # noqa: ASYNC110 (asks, then backs off)
            await asyncio.sleep(await ask(stub, conversation))

    # Open loop: each user thinks ~Exp(mean) between asks; USERS / (mean + LLM) = RATE.
    think_mean = max(0.0, load.users / load.rate - load.llm) if load.rate else 0.0

    async def open_loop(index: int) -> None:
        stub = stubs[index % len(stubs)]
        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        while True:
            await asyncio.sleep(random.expovariate(1.0 / think_mean) if think_mean else 0.0)
            if time.time() >= load.end_at:
                return
            await asyncio.sleep(await ask(stub))

    async def uploader(index: int) -> None:
        stub = stubs[(index + load.users + load.streams) % len(stubs)]
        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        while True:
            await asyncio.sleep(random.expovariate(1.0 / load.upload_think))
            began = time.time()
            if began >= load.end_at:
                return
            if inside(began):
                result.uploads_started += 1
            text = f"Upload {os.getpid()}-{index}-{began:.6f}: the relief valve of unit {index} opens at 7 bar.\n"
            requests = iter(
                [
                    gateway_pb2.IngestRequest(
                        metadata=gateway_pb2.IngestMetadata(filename=f"note-{index}.txt", content_type="text/plain")
                    ),
                    gateway_pb2.IngestRequest(chunk=text.encode()),
                ]
            )
            status = "OK"
            try:
                await stub.Ingest(requests, metadata=metadata, timeout=UPLOAD_DEADLINE_SECONDS)
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
                if retry_after_from(exc.trailing_metadata()) is not None:
                    status = "refused"
                    result.upload_refusals += inside(began)
            if inside(time.time()):
                if status == "OK":
                    result.uploads.append(time.time() - began)
                else:
                    result.upload_errors[status] += 1

    async def sample_lag() -> None:
        """The driver's own event-loop lag: latency it adds to what it measures (a harness queue)."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.01)
            if inside(time.time()):
                result.driver_lags.append(time.monotonic() - asked - 0.01)

    tasks = [asyncio.create_task(closed_loop(i)) for i in range(load.streams)]
    tasks.append(asyncio.create_task(sample_lag()))
    tasks += [asyncio.create_task(open_loop(i)) for i in range(load.users)]
    tasks += [asyncio.create_task(uploader(i)) for i in range(load.uploaders)]
    # Asks still running at the end of the window are not counted; stop them.
    await asyncio.sleep(max(0.0, load.end_at - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return result


def _driver_main(load: Load, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    _raise_open_file_limit()
    # uvloop, as the services run: the drivers' CPU per call is the harness's largest share.
    out.put(run_loop(_drive(load), "uvloop"))


# --- the platform ---------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Peak resident memory of each service process, sampled every 0.5 s on a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0.0
            for service, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    rss = rss_mib(pid)
                    total += rss
                    self.peak[service] = max(self.peak[service], rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(0.5)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_busy_jiffies(cpus: set[int]) -> tuple[int, int]:
    """(busy, total) jiffies so far of these CPUs, from /proc/stat (busy: not idle nor iowait)."""
    busy = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            counts = [int(v) for v in values[:8]]
            total += sum(counts)
            busy += sum(counts) - counts[3] - counts[4]
    return busy, total


_HANDLED = re.compile(r'^ragplatform_grpc_server_handled_total\{code="(\w+)",method="([^"]+)"\} ([0-9.e+]+)$')
_REFUSED = re.compile(r"^ragplatform_grpc_server_refused_total\{[^}]*\} ([0-9.e+]+)$")
_LAG = re.compile(r"^ragplatform_event_loop_lag_seconds_(sum|count)\{[^}]*\} ([0-9.e+]+)$")
_HANDLING = re.compile(r'^ragplatform_grpc_server_handling_seconds_(sum|count)\{method="([^"]+)"\} ([0-9.e+]+)$')
_FIRST_TOKEN = re.compile(r"^ragplatform_llm_time_to_first_token_seconds_(sum|count)\{[^}]*\} ([0-9.e+]+)$")
_QUEUED = re.compile(
    r'^ragplatform_admission_queue_seconds_bucket\{le="([^"]+)",outcome="(\w+)",service="([^"]+)"\} ([0-9.e+]+)$'
)

_PLATFORM_SHARE = re.compile(r'^ragplatform_ask_platform_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)$')


@dataclass
class ServiceCounts:
    """Per service, so far (from its /metrics): gRPC calls handled, calls refused, and the sum and
    count of its event-loop lag samples (absent from services that do not measure it)."""

    handled: dict[str, float] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)
    lag_sum: dict[str, float] = field(default_factory=dict)
    lag_count: dict[str, float] = field(default_factory=dict)
    # (service, method) -> (sum, count) of the time its server took to handle the call
    handling: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # generation's time from asking the model to its first token: the LLM double's own delay
    first_token: dict[str, float] = field(default_factory=lambda: {"sum": 0.0, "count": 0.0})
    # (service, outcome) -> cumulative bucket counts (upper bound -> calls) of the wait in front
    # of admission control, from the x-request-start stamps the drivers send
    queued: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)
    # the gateway's measure of each answer's platform share (admission to answer, less the model's
    # time): cumulative bucket counts, upper bound -> answers
    platform_share: dict[float, float] = field(default_factory=dict)

    def queued_quantiles(self, before: ServiceCounts, service: str, outcome: str) -> tuple[int, float, float]:
        """(calls, p50, p99) of the wait before `service` admitted or refused calls in between,
        interpolated within histogram buckets as Prometheus' histogram_quantile does."""
        return histogram_quantiles(self.queued.get((service, outcome), {}), before.queued.get((service, outcome), {}))

    def platform_share_quantiles(self, before: ServiceCounts) -> tuple[int, float, float]:
        """(answers, p50, p99) of the platform's share of the answers in between, as the gateway
        measured it."""
        return histogram_quantiles(self.platform_share, before.platform_share)

    def mean_handling(self, before: ServiceCounts, service: str, method: str) -> float:
        now, then = self.handling.get((service, method), [0.0, 0.0]), before.handling.get((service, method), [0.0, 0.0])
        count = now[1] - then[1]
        return (now[0] - then[0]) / count if count > 0 else float("nan")

    def mean_first_token(self, before: ServiceCounts) -> float:
        count = self.first_token["count"] - before.first_token["count"]
        return (self.first_token["sum"] - before.first_token["sum"]) / count if count > 0 else float("nan")

    def mean_lag_ms(self, before: ServiceCounts, service: str) -> float | None:
        count = self.lag_count.get(service, 0.0) - before.lag_count.get(service, 0.0)
        if count <= 0:
            return None
        return 1000 * (self.lag_sum[service] - before.lag_sum.get(service, 0.0)) / count


def grpc_counts(processes: PlatformProcesses) -> ServiceCounts:
    """Per service: gRPC calls handled, refused, and event-loop lag so far (from its /metrics)."""
    counts = ServiceCounts()
    handled, refused = counts.handled, counts.refused
    for service in SERVICES:
        port = processes.metrics_ports.get(service)
        if not port:
            continue
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        handled[service] = refused[service] = 0.0
        for line in text.splitlines():
            if match := _HANDLED.match(line):
                handled[service] += float(match.group(3))
            elif match := _REFUSED.match(line):
                refused[service] += float(match.group(1))
            elif match := _LAG.match(line):
                into = counts.lag_sum if match.group(1) == "sum" else counts.lag_count
                into[service] = float(match.group(2))
            elif match := _HANDLING.match(line):
                pair = counts.handling.setdefault((service, match.group(2)), [0.0, 0.0])
                pair[0 if match.group(1) == "sum" else 1] = float(match.group(3))
            elif match := _QUEUED.match(line):
                bound = float(match.group(1))
                counts.queued.setdefault((match.group(3), match.group(2)), {})[bound] = float(match.group(4))
            elif service == "gateway" and (match := _PLATFORM_SHARE.match(line)):
                counts.platform_share[float(match.group(1))] = float(match.group(2))
            elif match := _FIRST_TOKEN.match(line):
                counts.first_token[match.group(1)] += float(match.group(2))
    return counts


def histogram_quantiles(now: dict[float, float], then: dict[float, float]) -> tuple[int, float, float]:
    """(count, p50, p99) of what a histogram (cumulative counts by upper bound) observed between
    two readings."""
    buckets = sorted((bound, count - then.get(bound, 0.0)) for bound, count in now.items())
    total = buckets[-1][1] if buckets else 0.0
    return int(total), bucket_quantile(buckets, 0.5), bucket_quantile(buckets, 0.99)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of cumulative (upper bound, count) buckets, the last one +Inf, interpolated
    linearly within its bucket; the largest finite bound when it falls in +Inf; NaN when empty."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def backend_counts(backends: ProductionBackends) -> tuple[int, int]:
    """(SQL statements PgBouncer has passed on, commands Redis has processed) so far."""
    assert backends.pgbouncer is not None
    assert backends.redis is not None
    statements = backends.pgbouncer.total_query_count()
    import redis

    client = redis.Redis.from_url(backends.redis.url)
    try:
        stats: dict[str, int] = client.info("stats")
        commands = int(stats["total_commands_processed"])
    finally:
        client.close()
    return statements, commands


def start_llm_double(latency: float, token_delay: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.openai_test_server",
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--token-delay",
            str(token_delay),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"the OpenAI-compatible test double did not start: {line!r}")
    return process, line.split()[1]


async def ingest_corpus(gateway: str, key: str) -> None:
    async with GatewayClient(gateway, key, timeout=60) as client:
        jobs = [(await client.ingest_file(path)).job.job_id for path in sorted(CORPUS.iterdir())]
        deadline = time.monotonic() + 120
        while True:
            states = [(await client.get_job(j)).state for j in jobs]
            if all(s in TERMINAL_STATES for s in states):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the corpus was not ingested within 120 s")
            await asyncio.sleep(0.2)
        if any(s != common_pb2.JOB_STATE_SUCCEEDED for s in states):
            raise RuntimeError(f"corpus ingestion failed: {states}")


def double_lateness(llm_url: str) -> list[float]:
    """How late each streamed answer's first token left the LLM double so far, beyond its set
    latency (its own delay on the harness CPU; `GET /test/stats` of tests/support/openai_test_server)."""
    with urllib.request.urlopen(f"{llm_url.removesuffix('/v1')}/test/stats", timeout=10) as reply:
        late: list[float] = json.loads(reply.read())["first_token_lateness_seconds"]
    return late


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Level:
    """One measured level: closed-loop `streams`, or open-loop `users` at `rate` asks/s."""

    streams: int = 0
    users: int = 0
    rate: float = 0.0
    uploaders: int = 0
    # An open-loop rate given as a multiple of the capacity (see `main`).
    of_capacity: float = 0.0
    # Seconds of the level, warm-up included, and of its warm-up (0: --duration, --warmup).
    duration: float = 0.0
    warmup: float = 0.0

    def title(self) -> str:
        if self.streams:
            what = f"{self.streams} concurrent Ask streams"
        else:
            what = f"{self.users} connected users asking {self.rate:.1f}/s in total (open loop)"
            if self.of_capacity:
                what += f", {self.of_capacity:g}x the capacity"
        return what + (f" + {self.uploaders} uploaders" if self.uploaders else "")


def run_level(
    processes: PlatformProcesses,
    backends: ProductionBackends,
    key: str,
    level: Level,
    args: argparse.Namespace,
    floor: Floor,
    harness: Harness,
    llm_url: str,
) -> Step:
    """Run one level, print its figures, and return what it measured (its asks/s sustained are
    `answered / measured_seconds`). `harness` names the processes around the platform (test
    doubles, backends) whose CPU is reported beside it."""
    duration: float = level.duration or args.duration
    warmup: float = level.warmup or args.warmup
    drivers: int = args.drivers
    llm: float = args.llm_latency
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 5.0 + (level.users + level.uploaders) / 2000  # drivers import and connect first
    measure_from, end_at = start_at + warmup, start_at + duration

    def share(total: int, i: int) -> int:
        count: int = total // drivers + (1 if i < total % drivers else 0)
        return count

    loads = [
        Load(
            processes.gateway,
            key,
            start_at,
            measure_from,
            end_at,
            streams=share(level.streams, i),
            users=share(level.users, i),
            rate=level.rate * share(level.users, i) / max(1, level.users),
            uploaders=share(level.uploaders, i),
            upload_think=args.upload_think,
            llm=llm,
            follow_ups=args.follow_ups,
        )
        for i in range(drivers)
    ]
    workers = [
        context.Process(target=_driver_main, args=(load, out))
        for load in loads
        if load.streams or load.users or load.uploaders
    ]
    pids = {s: processes.pid(s) for s in SERVICES}
    # Background SQL/Redis traffic (worker polling, gauges) while nobody asks, per second: it is
    # subtracted from the counts per answer below.
    idle_sql, idle_redis = backend_counts(backends)
    idle_began = time.monotonic()
    time.sleep(2.0)
    idle_sql_after, idle_redis_after = backend_counts(backends)
    idle_seconds = time.monotonic() - idle_began
    idle_sql_rate = (idle_sql_after - idle_sql) / idle_seconds
    idle_redis_rate = (idle_redis_after - idle_redis) / idle_seconds
    profilers: list[subprocess.Popen[bytes]] = []
    with RssSampler(pids) as sampler, AdmissionTrace(processes.metrics_ports["gateway"]) as trace:
        for w in workers:
            w.start()
        time.sleep(max(0.0, measure_from - time.time()))
        if args.profile:
            # The Ask path's services, and the load drivers (what a call costs the harness).
            profiled = {s: pids[s] for s in ASK_PATH} | {f"driver{i}": w.pid for i, w in enumerate(workers) if w.pid}
            profilers = start_profilers(args.profile, profiled, duration - warmup, level)
        services_cpu = CpuMeter({s: [pid] for s, pid in pids.items()})
        harness_cpu = CpuMeter({DRIVERS: [w.pid for w in workers if w.pid], **harness.pids}, trees={"PostgreSQL"})
        services_cpu.start()
        harness_cpu.start()
        counts_before = grpc_counts(processes)
        late_before = len(double_lateness(llm_url))
        sql_before, redis_before = backend_counts(backends)
        service_jiffies = cpu_busy_jiffies(args.service_cpus)
        harness_jiffies = cpu_busy_jiffies(args.harness_cpus)
        time.sleep(max(0.0, end_at - time.time()))
        cpu_used = services_cpu.stop()
        harness_used = harness_cpu.stop()
        service_busy = _busy_share(service_jiffies, cpu_busy_jiffies(args.service_cpus))
        harness_busy = _busy_share(harness_jiffies, cpu_busy_jiffies(args.harness_cpus))
        counts_after = grpc_counts(processes)
        late = double_lateness(llm_url)[late_before:]
        sql_after, redis_after = backend_counts(backends)
        results: list[DriverResult] = [out.get(timeout=duration + 120) for _ in workers]
        for w in workers:
            w.join(timeout=30)
        for profiler in profilers:
            profiler.wait(timeout=60)
    latencies = [x for r in results for x in r.latencies]
    to_sources = [x for r in results for x in r.to_sources]
    to_first_token = [x for r in results for x in r.to_first_token]
    refusals = [x for r in results for x in r.refusals]
    uploads = [x for r in results for x in r.uploads]
    errors: Counter[str] = Counter()
    upload_errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for r in results:
        errors.update(r.errors)
        upload_errors.update(r.upload_errors)
        examples.update(r.error_examples)
    window = duration - warmup
    answered = max(1, len(latencies))
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    follow_ups = f", {args.follow_ups:.0%} of asks follow-ups" if args.follow_ups and level.streams else ""
    print(f"\n== {level.title()} ({drivers} client processes, {window:.0f} s measured{follow_ups})")
    if level.streams:
        print(
            f"  asks/s sustained   {len(latencies) / window:8.1f}   "
            f"(ideal with a {llm:g} s LLM: {level.streams / llm:.0f})"
        )
    else:
        arrivals = sum(r.started for r in results) / window
        print(
            f"  asks/s sustained   {len(latencies) / window:8.1f}   "
            f"(arrivals {arrivals:.1f}/s; target {level.rate:g}/s)"
        )
    if latencies:
        print(f"  total latency      p50 {p50:6.2f} s   p99 {p99:6.2f} s   mean {statistics.fmean(latencies):6.2f} s")
        print(f"  added over the LLM p50 {p50 - llm:6.2f} s   p99 {p99 - llm:6.2f} s")
        within = sum(1 for x in latencies if x - llm <= ADDED_P99_SECONDS)
        print(
            f"  within the SLO     {within / window:.1f} asks/s answered within LLM + {ADDED_P99_SECONDS:g} s "
            f"({100 * within / len(latencies):.0f} % of answers; the rest answered late)"
        )
        s50, s99 = percentile(to_sources, 0.5), percentile(to_sources, 0.99)
        f50, f99 = percentile(to_first_token, 0.5), percentile(to_first_token, 0.99)
        print(f"  to sources         p50 {s50:6.2f} s   p99 {s99:6.2f} s   (auth, history, retrieval)")
        print(f"  to first token     p50 {f50:6.2f} s   p99 {f99:6.2f} s   (includes the LLM's {llm:g} s)")
    print(f"  answered           {len(latencies)}   errors {dict(errors) or 0}")
    for status, example in examples.items():
        print(f"    {status}: {example}")
    without_hint = sum(r.refusals_without_hint for r in results)
    if refusals or without_hint:
        r50, r99 = percentile(refusals, 0.5), percentile(refusals, 0.99)
        print(
            f"  refused            {len(refusals)} with a retry-after hint ({without_hint} without), "
            f"in p50 {1000 * r50:.0f} ms  p99 {1000 * r99:.0f} ms"
        )
    for outcome in ("refused", "admitted"):
        decided, q50, q99 = counts_after.queued_quantiles(counts_before, "gateway", outcome)
        if decided:
            print(
                f"  gateway-side wait  {outcome} {decided}: from the client's stamp to the gateway's decision "
                f"p50 {1000 * q50:.0f} ms  p99 {1000 * q99:.0f} ms (x-request-start; no client-side queueing after)"
            )
    behind = [(s, *counts_after.queued_quantiles(counts_before, s, "admitted")) for s in ("retrieval", "generation")]
    if any(calls for _, calls, _, _ in behind):
        print(
            "  wait behind it     "
            + "  ".join(
                f"{s} p50 {1000 * q50:.0f} ms  p99 {1000 * q99:.0f} ms ({calls} calls);"
                for s, calls, q50, q99 in behind
            )
            + " from the caller's stamp to the service admitting the call (gRPC's queue, mostly)"
        )
    judged, s50, s99 = counts_after.platform_share_quantiles(counts_before)
    if judged:
        print(
            f"  platform share     {judged} answers: admission to answer less the model's time, as the gateway "
            f"measured it, p50 {1000 * s50:.0f} ms  p99 {1000 * s99:.0f} ms (what its latency budget judges)"
        )
    if level.uploaders:
        u99 = percentile(uploads, 0.99)
        print(
            f"  uploads            {len(uploads)} ({len(uploads) / window:.1f}/s), p99 {u99:.2f} s, "
            f"errors {dict(upload_errors) or 0}"
        )
    print(
        "  peak RSS (MiB)     "
        + "  ".join(f"{s} {sampler.peak[s]:.0f}" for s in SERVICES)
        + f"   total {sampler.peak_total:.0f}"
    )
    per_ask = {s: 1000 * cpu_used[s] / answered for s in SERVICES}
    print("  CPU ms per answer  " + "  ".join(f"{s} {per_ask[s]:.1f}" for s in SERVICES))
    cores = sum(cpu_used.values()) / window
    print(f"  CPU used           {cores:.2f} cores by the services; machine load {os.getloadavg()[0]:.1f}")
    print(
        f"  CPUs busy          services' {100 * service_busy:.0f} %  harness' {100 * harness_busy:.0f} %"
        f"   (everything on them, other work included)"
    )
    begun = sum(r.started + r.uploads_started for r in results)
    refused_calls = len(refusals) + sum(r.upload_refusals for r in results)
    harness.report(harness_used, window, len(latencies), begun, refused_calls, len(args.harness_cpus), harness_busy)
    lags = {s: counts_after.mean_lag_ms(counts_before, s) for s in SERVICES}
    driver_lags = [x for r in results for x in r.driver_lags]
    print(
        "  event-loop lag     "
        + "  ".join(f"{s} {lag:.1f}" for s, lag in lags.items() if lag is not None)
        + (" ms mean;  " if any(lag is not None for lag in lags.values()) else "")
        + f"load drivers p50 {1000 * percentile(driver_lags, 0.5):.1f} ms  "
        + f"p99 {1000 * percentile(driver_lags, 0.99):.1f} ms"
    )
    print(
        f"  LLM double         first token after {counts_after.mean_first_token(counts_before):.2f} s on average "
        f"as generation saw it (set to {llm:g} s; more is the harness's or generation's delay); the double's own "
        f"lateness beyond it, from its handler's start, p50 {1000 * percentile(late, 0.5):.0f} ms  "
        f"p99 {1000 * percentile(late, 0.99):.0f} ms ({len(late)} answers)"
    )
    if latencies:
        ask = counts_after.mean_handling(counts_before, "gateway", "/ragplatform.v1.GatewayService/Ask")
        generate = counts_after.mean_handling(counts_before, "generation", "/ragplatform.v1.GenerationService/Generate")
        print(
            f"  where it went      mean Ask {statistics.fmean(latencies):.2f} s as clients saw it; the gateway "
            f"handled Asks for {ask:.2f} s (the rest waited before it, in gRPC's queues or the drivers'); "
            f"generation handled Generate for {generate:.2f} s; to sources {statistics.fmean(to_sources):.2f} s"
        )
    calls = sum(counts_after.handled.get(s, 0) - counts_before.handled.get(s, 0) for s in ASK_PATH) / answered
    refused = {s: counts_after.refused.get(s, 0) - counts_before.refused.get(s, 0) for s in SERVICES}
    # The gateway forwards each generation message as one Ask message, and adds the sources: the
    # streamed messages of an Ask are twice what its caller received, less one.
    received = sum(r.messages for r in results) / answered
    messages = max(0.0, 2 * received - 1)
    statements = max(0.0, sql_after - sql_before - idle_sql_rate * window) / answered
    commands = max(0.0, redis_after - redis_before - idle_redis_rate * window) / answered
    ask_path = sum(per_ask[s] for s in ASK_PATH)
    least = floor.for_hops(calls, messages, statements, commands)
    print(
        f"  hops per answer    gRPC calls {calls:.1f}  streamed messages {messages:.1f}  "
        f"SQL statements {statements:.1f}  Redis commands {commands:.1f}  "
        f"(less the idle {idle_sql_rate:.1f} statements/s and {idle_redis_rate:.1f} commands/s)"
    )
    print(
        f"  Ask path CPU       {ask_path:.1f} ms per answer; floor for its hops {least:.1f} ms; "
        f"ratio {ask_path / least if least else float('nan'):.2f}x"
    )
    if any(refused.values()):
        print("  refused by        " + "  ".join(f"{s} {n:.0f}" for s, n in refused.items() if n))
    print(f"  gateway admission  {trace.summary(measure_from, end_at)}")
    gateway_refused = refused.get("gateway", 0)
    print(
        f"  gateway CPU        {1000 * cpu_used['gateway'] / window:.0f} ms/s for {len(latencies) / window:.1f} "
        f"answers/s and {gateway_refused / window:.1f} refusals/s"
        + (
            f": {1000 * cpu_used['gateway'] / gateway_refused:.2f} ms per refusal if refusals took it all"
            if gateway_refused > 10 * len(latencies)
            else ""
        )
    )
    if level.streams and (refusals or without_hint) and service_busy < CPU_BOUND_BUSY:
        print(
            f"  capacity           NOT the CPU's: calls were refused while the services' CPUs were "
            f"{100 * service_busy:.0f} % busy (the admission limit's ceiling bound it; x levels scale from it)"
        )
    check = verdict(
        LevelFigures(
            of_capacity=level.of_capacity,
            users=level.users,
            uploaders=level.uploaders,
            refused=len(refusals),
            refused_without_hint=without_hint,
            refusal_p99_seconds=percentile(refusals, 0.99) if refusals else 0.0,
            added_p99_seconds=p99 - llm if latencies else float("inf"),
            errors=errors,
            upload_errors=upload_errors,
            upload_refusals=sum(r.upload_refusals for r in results),
            rss_total_mib=sampler.peak_total,
        ),
        [f"--env {item}" for item in args.env] + [f"--nice {item}" for item in args.nice],
    )
    if check is not None:
        print(f"  {check}")
    return Step(
        rate=level.rate,
        answered=len(latencies),
        refused=refused_calls + without_hint,
        # Refusals without a hint are counted among `errors` too: once here, as refused.
        errors=sum(errors.values()) - without_hint + sum(n for s, n in upload_errors.items() if s != "refused"),
        added_p99_seconds=p99 - llm if latencies else float("inf"),
        measured_seconds=window,
    )


def renice_threads(pid: int, niceness: int) -> None:
    """Every thread of the process at `niceness` (Linux's nice is per thread; threads started later
    inherit their creator's)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def start_profilers(
    directory: Path, pids: dict[str, int], seconds: float, level: Level
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process of `pids` for the measured window: collapsed stacks (flamegraph.pl /
    speedscope input) in `directory` (py-spy needs ptrace: run as root or with CAP_SYS_PTRACE)."""
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"{level.streams}s" if level.streams else f"{level.users}u"
    return [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(directory / f"{name}-{tag}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def parse_open_loop(text: str) -> tuple[int, str, int | None]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not re.fullmatch(r"[0-9.]+x?", parts[1]):
        raise argparse.ArgumentTypeError(
            "--open-loop takes USERS:RATE[:UPLOADERS], e.g. 5000:30 or 5000:30:500; RATE may be a multiple "
            "of the rate the closed-loop level before it sustained, e.g. 5000:3x or 5000:0.8x:500"
        )
    return int(parts[0]), parts[1], int(parts[2]) if len(parts) == 3 else None


def open_loop_level(users: int, rate: str, uploaders: int) -> Level:
    if rate.endswith("x"):
        return Level(users=users, uploaders=uploaders, of_capacity=float(rate[:-1]))
    return Level(users=users, rate=float(rate), uploaders=uploaders)


def search_capacity(level: Level, args: argparse.Namespace, run_step: Callable[[Level], Step]) -> float:
    """The sustainable rate (bench/capacity_search.py): open-loop steps of `level`'s users and
    uploaders, each `--search-duration` s long, at the rates the search picks; prints each step's
    verdict and what was found, and returns it."""
    policy = SearchPolicy(start=args.search_start, steps=args.search_steps)
    steps: list[Step] = []
    while (rate := next_rate(policy, steps)) is not None:
        measured = run_step(
            dataclasses.replace(
                level, rate=rate, duration=args.search_duration, warmup=min(args.warmup, args.search_duration / 3)
            )
        )
        steps.append(measured)
        why = measured.failures()
        print(
            f"  capacity search    step {len(steps)}: {rate:.1f} asks/s arriving, {measured.answered_per_second:.1f} "
            f"answered/s: " + ("sustained" if not why else "NOT sustained (" + ", ".join(why) + ")")
        )
    capacity, failed = found(steps), bracket(steps)[1]
    print(
        f"\n== capacity: {capacity:.1f} asks/s sustainable ({level.users} users"
        + (f" + {level.uploaders} uploaders" if level.uploaders else "")
        + f"; nothing refused, no error, p99 added <= {ADDED_P99_SECONDS * 1000:g} ms; "
        + f"{len(steps)} steps of {args.search_duration:g} s"
        + (f"; {failed:.1f}/s was not" if failed < float("inf") else "; no step failed: the search's top was not found")
        + "). x levels scale from it."
    )
    if not capacity:
        print("  capacity search    no step was sustainable: x levels would run at 0 asks/s")
    return capacity


def parse_users(text: str) -> tuple[int, int]:
    users, _, uploaders = text.partition(":")
    if not users.isdigit() or not (uploaders.isdigit() or not uploaders):
        raise argparse.ArgumentTypeError("--sustainable takes USERS[:UPLOADERS], e.g. 5000 or 5000:500")
    return int(users), int(uploaders or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", type=int, nargs="*", default=None, help="closed-loop levels (default 100 1000 5500)"
    )
    parser.add_argument(
        "--open-loop",
        type=parse_open_loop,
        action="append",
        default=[],
        metavar="USERS:RATE[:UPLOADERS]",
        help="open-loop level; RATE as e.g. 3x: that multiple of the capacity (--sustainable's, --capacity, or "
        "else the rate the last closed-loop level sustained)",
    )
    parser.add_argument(
        "--sustainable",
        type=parse_users,
        default=None,
        metavar="USERS[:UPLOADERS]",
        help="find the sustainable rate (the most asks/s arriving with nothing refused, no error and p99 added "
        "<= 250 ms) by a bounded search of open-loop steps of USERS askers (and UPLOADERS uploaders), after any "
        "closed-loop level; x levels scale from it (bench/capacity_search.py)",
    )
    parser.add_argument(
        "--search-start", type=float, default=SearchPolicy.start, help="asks/s of the search's first step"
    )
    parser.add_argument("--search-steps", type=int, default=SearchPolicy.steps, help="steps of the search at most")
    parser.add_argument("--search-duration", type=float, default=14.0, help="seconds per search step, warm-up included")
    parser.add_argument(
        "--capacity",
        type=float,
        default=None,
        metavar="RATE",
        help="the capacity x levels scale from, in asks/s (e.g. one a search found in another run, to compare "
        "settings at the same rates); with --sustainable, the search still runs and prints what it finds",
    )
    parser.add_argument("--uploaders", type=int, default=0, help="uploading users beside the open-loop askers")
    parser.add_argument(
        "--stream-uploaders",
        type=int,
        default=0,
        help="uploading users beside the closed-loop streams too: a capacity measured with the uploads an "
        "open-loop level will have (its 0.8x is then 80 %% of what that mix sustains)",
    )
    parser.add_argument(
        "--follow-ups",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of each closed-loop stream's asks (0-1) that follow up its previous answer's conversation "
        "(history read, question rewritten); 0, the default, asks only first questions",
    )
    parser.add_argument("--upload-think", type=float, default=10.0, help="mean seconds between one user's uploads")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds per level, warm-up included")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--drivers", type=int, default=2, help="client processes")
    parser.add_argument("--llm-latency", type=float, default=2.0)
    parser.add_argument(
        "--llm-token-delay",
        type=float,
        default=0.0,
        help="seconds between the LLM double's streamed tokens (default 0: the whole answer at once after "
        "--llm-latency); a real model streams tokens apart, and each may become a message at every hop. "
        "The answer's own time grows by ~40 x this, which 'added over the LLM' does not subtract",
    )
    parser.add_argument("--service-cpus", type=parse_cpus, default=parse_cpus("0"), help="CPUs of the services")
    parser.add_argument("--harness-cpus", type=parse_cpus, default=parse_cpus("1"), help="CPUs of everything else")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="[SERVICE:]RAG_X=VALUE",
        help="extra setting for every service, or for SERVICE only (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR", help="py-spy each Ask-path service into DIR"
    )
    parser.add_argument(
        "--operator-weights",
        action="store_true",
        help="weigh the services on the shared service CPUs as the operator's default CPU requests weigh their pods "
        "(bench/cpu_weights.py: gateway and retrieval -4, the worker -7, the rest 0; needs root or CAP_SYS_NICE); "
        "--nice overrides a service's",
    )
    parser.add_argument(
        "--nice",
        action="append",
        default=[],
        metavar="SERVICE:N",
        help="run SERVICE's threads at niceness N (repeatable), e.g. gateway:-5: CPU weights on the shared "
        "service CPUs as CPU requests give pods in a cluster (cgroup cpu.weight); below 0 needs root or CAP_SYS_NICE",
    )
    args = parser.parse_args()
    streams = (
        [100, 1000, 5500]
        if args.streams is None and not args.open_loop and not args.sustainable
        else (args.streams or [])
    )
    levels = [Level(streams=n, uploaders=args.stream_uploaders) for n in streams]
    levels += [open_loop_level(u, r, args.uploaders if up is None else up) for u, r, up in args.open_loop]
    if any(level.of_capacity for level in levels) and not (
        args.capacity or args.sustainable or any(level.streams for level in levels)
    ):
        parser.error(
            "a RATE such as 3x is a multiple of the capacity: measure it (--sustainable 5000:500, or a closed-loop "
            "level such as --streams 300 before it) or give it (--capacity 60)"
        )
    _raise_open_file_limit()
    available = os.sched_getaffinity(0)
    if not (args.service_cpus <= available and args.harness_cpus <= available):
        parser.error(f"--service-cpus/--harness-cpus must be among this machine's CPUs {sorted(available)}")
    # Everything started from here on (backends, doubles, drivers) inherits the harness CPUs;
    # the services are moved to theirs as they start.
    os.sched_setaffinity(0, args.harness_cpus)

    backends = ProductionBackends()
    llm: subprocess.Popen[bytes] | None = None
    embedder: subprocess.Popen[bytes] | None = None
    processes: PlatformProcesses | None = None
    try:
        backends.start()
        llm, url = start_llm_double(args.llm_latency, args.llm_token_delay)
        # Embeddings from a second instance without the LLM's latency: a query embedding takes
        # milliseconds at a real endpoint, and the 2 s belong to the chat model alone.
        embedder, embedding_url = start_llm_double(0.0)
        env = backends.env(
            url,
            RAG_EMBEDDING_URL=embedding_url,
            RAG_RATE_LIMIT_RPS="100000",
            RAG_RATE_LIMIT_BURST="100000",
            RAG_ANSWER_CACHE_TTL_SECONDS="0",
            RAG_LOG_LEVEL="warning",
        )
        service_env: dict[str, dict[str, str]] = {}
        for item in args.env:
            name, value = item.split("=", 1)
            service, _, name = name.rpartition(":")
            (service_env.setdefault(service, {}) if service else env)[name] = value
        processes = PlatformProcesses(
            Path(tempfile.mkdtemp(prefix="ragplatform-bench-")),
            extra_env=env,
            service_env=service_env,
            cpus=args.service_cpus,
            metrics=True,
        )
        processes.start_all()
        niceness = operator_niceness() if args.operator_weights else {}
        for item in args.nice:
            service, _, value = item.rpartition(":")
            niceness[service] = int(value)
        for service, value in niceness.items():
            if value:
                renice_threads(processes.pid(service), value)
        key = processes.create_api_key("bench")
        asyncio.run(ingest_corpus(processes.gateway, key))
        assert backends.pgbouncer is not None
        assert backends.redis is not None
        floor = measure_backend_floor(
            measure_floor(args.service_cpus), backends.pgbouncer.url(backends.database), backends.redis.url
        )
        print(
            f"platform up: {', '.join(SERVICES)} as separate processes on CPUs {sorted(args.service_cpus)}; "
            f"harness on CPUs {sorted(args.harness_cpus)}; LLM test double at {args.llm_latency:g} s"
            + (f", a token every {args.llm_token_delay:g} s" if args.llm_token_delay else "")
            + (
                "; niceness "
                + ", ".join(f"{s} {n}" for s, n in niceness.items() if n)
                + (" (the operator's default CPU requests)" if args.operator_weights else "")
                if any(niceness.values())
                else ""
            )
        )
        print(
            f"floor (same run)   gRPC unary round trip {floor.unary_ms:.3f} ms  streamed message "
            f"{floor.message_ms:.4f} ms  SQL statement {floor.sql_ms:.3f} ms  Redis command {floor.redis_ms:.3f} ms"
        )
        assert backends.postgres is not None
        assert backends.s3 is not None
        harness = Harness(
            {
                "LLM double": [llm.pid],
                "embedding double": [embedder.pid],
                "PostgreSQL": [backends.postgres.pid],
                "PgBouncer": [backends.pgbouncer.pid],
                "Redis": [backends.redis.pid],
                "moto S3": [backends.s3.pid],
            }
        )

        # The capacity x levels scale from: given (--capacity), found by the search (--sustainable),
        # or, as before the search existed, what the last closed-loop level squeezed through.
        def run_step(level: Level) -> Step:
            return run_level(processes, backends, key, level, args, floor, harness, url)

        capacity = args.capacity or 0.0
        for level in (level for level in levels if level.streams):
            step = run_step(level)
            if not args.capacity and args.sustainable is None:
                capacity = step.answered_per_second
        if args.sustainable is not None:
            users, uploaders = args.sustainable
            found_here = search_capacity(Level(users=users, uploaders=uploaders), args, run_step)
            capacity = args.capacity or found_here
            if args.capacity:
                print(f"  x levels scale from --capacity {args.capacity:g}, not from the {found_here:.1f} found here")
        for level in (level for level in levels if not level.streams):
            if level.of_capacity:
                level = dataclasses.replace(level, rate=level.of_capacity * capacity)
            run_step(level)
    finally:
        if processes is not None:
            processes.stop_all()
        for double in (llm, embedder):
            if double is not None:
                double.terminate()
                double.wait(timeout=30)
        backends.stop()


if __name__ == "__main__":
    main()
