"""Ask throughput and latency in the production shape: every service its own process on
PostgreSQL 15 (through PgBouncer, transaction pooling), Redis 7 (queue, rate limits) and moto S3,
with answers from the OpenAI-compatible TEST DOUBLE at a fixed LLM latency (2 s by default) and
embeddings from a second instance of it without that latency — so the figures are what the
platform adds around the model.

    python bench/ask_throughput.py [--streams 100 1000 5500] [--duration 25] [--drivers 2]

For each level, `--drivers` client processes keep N Ask streams open in a closed loop (each
stream asks again as soon as its answer is done) over a fixed pool of gRPC channels, for
`--duration` seconds; the first `--warmup` seconds are not measured. Every question is distinct
and the answer cache is off (RAG_ANSWER_CACHE_TTL_SECONDS=0), so every ask takes the whole path:
auth, rate limit (Redis), conversation (PostgreSQL), retrieval (query embedding at the endpoint
+ vector search), generation (streamed from the endpoint), both turns stored.

Printed per level: asks/s sustained, p50/p99 total latency and latency added over the LLM's own,
errors by gRPC status, and peak RSS of each service process. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform.client import TERMINAL_STATES, GatewayClient
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


# --- the client side (runs in driver processes) -------------------------------------------------


@dataclass
class DriverResult:
    latencies: list[float] = field(default_factory=list)  # asks finished inside the window
    to_sources: list[float] = field(default_factory=list)  # ... their time to the sources message
    to_first_token: list[float] = field(default_factory=list)  # ... and to the first answer delta
    errors: Counter[str] = field(default_factory=Counter)  # status -> count (inside the window)
    error_examples: dict[str, str] = field(default_factory=dict)


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _drive(
    gateway: str, key: str, streams: int, start_at: float, measure_from: float, end_at: float
) -> DriverResult:
    result = DriverResult()
    channels = [
        # A channel each, not a shared subchannel: separate connections like separate clients.
        grpc.aio.insecure_channel(gateway, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, (streams + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL))
    ]
    stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
    metadata = (("authorization", f"Bearer {key}"),)
    counter = 0

    async def stream(index: int) -> None:
        nonlocal counter
        stub = stubs[index % len(stubs)]
        # Spread the first asks over one LLM latency so the streams do not move in lockstep.
        await asyncio.sleep(max(0.0, start_at - time.time()) + random.uniform(0.0, 2.0))
        while time.time() < end_at:
            counter += 1
            question = f"{QUESTIONS[counter % len(QUESTIONS)]} (ask {os.getpid()}-{counter})"
            began = time.time()
            status = "OK"
            detail = ""
            sources_at = first_token_at = 0.0
            received = 0
            try:
                call = stub.Ask(
                    gateway_pb2.AskRequest(question=question), metadata=metadata, timeout=ASK_DEADLINE_SECONDS
                )
                async for message in call:
                    received += 1
                    kind = message.WhichOneof("event")
                    if kind == "sources":
                        sources_at = time.time()
                    elif kind == "delta" and not first_token_at:
                        first_token_at = time.time()
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
                detail = f"{exc.details()} (after {time.time() - began:.2f} s and {received} messages)"
            finished = time.time()
            if measure_from <= finished <= end_at:
                if status == "OK":
                    result.latencies.append(finished - began)
                    result.to_sources.append(sources_at - began)
                    result.to_first_token.append(first_token_at - began)
                else:
                    result.errors[status] += 1
                    result.error_examples.setdefault(status, detail[:300])
            if status != "OK":
                await asyncio.sleep(0.5)  # a failing client backs off a little, as real ones do

    tasks = [asyncio.create_task(stream(i)) for i in range(streams)]
    # Asks still running at the end of the window are not counted; stop them.
    await asyncio.sleep(max(0.0, end_at - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return result


def _driver_main(args: tuple[str, str, int, float, float, float], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    _raise_open_file_limit()
    out.put(asyncio.run(_drive(*args)))


# --- the platform ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for service, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    self.peak[service] = max(self.peak[service], rss_mib(pid))
            self._stop.wait(0.5)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_llm_double(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_test_server", "--port", str(port), "--latency", str(latency)],
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


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_level(
    processes: PlatformProcesses, key: str, streams: int, drivers: int, duration: float, warmup: float, llm: float
) -> None:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 3.0  # let every driver process import and connect first
    measure_from, end_at = start_at + warmup, start_at + duration
    shares = [streams // drivers + (1 if i < streams % drivers else 0) for i in range(drivers)]
    workers = [
        context.Process(target=_driver_main, args=((processes.gateway, key, n, start_at, measure_from, end_at), out))
        for n in shares
        if n
    ]
    pids = {s: processes.pid(s) for s in SERVICES}
    with RssSampler(pids) as sampler:
        for w in workers:
            w.start()
        time.sleep(max(0.0, measure_from - time.time()))
        cpu_before = {s: cpu_seconds(pid) for s, pid in pids.items()}
        time.sleep(max(0.0, end_at - time.time()))
        cpu_used = {s: cpu_seconds(pid) - cpu_before[s] for s, pid in pids.items()}
        results: list[DriverResult] = [out.get(timeout=duration + 120) for _ in workers]
        for w in workers:
            w.join(timeout=30)
    latencies = [x for r in results for x in r.latencies]
    to_sources = [x for r in results for x in r.to_sources]
    to_first_token = [x for r in results for x in r.to_first_token]
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for r in results:
        errors.update(r.errors)
        examples.update(r.error_examples)
    window = duration - warmup
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"\n== {streams} concurrent Ask streams ({drivers} client processes, {window:.0f} s measured)")
    print(f"  asks/s sustained   {len(latencies) / window:8.1f}   (ideal with a {llm:g} s LLM: {streams / llm:.0f})")
    if latencies:
        print(f"  total latency      p50 {p50:6.2f} s   p99 {p99:6.2f} s   mean {statistics.fmean(latencies):6.2f} s")
        print(f"  added over the LLM p50 {p50 - llm:6.2f} s   p99 {p99 - llm:6.2f} s")
        s50, s99 = percentile(to_sources, 0.5), percentile(to_sources, 0.99)
        f50, f99 = percentile(to_first_token, 0.5), percentile(to_first_token, 0.99)
        print(f"  to sources         p50 {s50:6.2f} s   p99 {s99:6.2f} s   (auth, history, retrieval)")
        print(f"  to first token     p50 {f50:6.2f} s   p99 {f99:6.2f} s   (includes the LLM's {llm:g} s)")
    print(f"  answered           {len(latencies)}   errors {dict(errors) or 0}")
    for status, example in examples.items():
        print(f"    {status}: {example}")
    print("  peak RSS (MiB)     " + "  ".join(f"{s} {sampler.peak[s]:.0f}" for s in SERVICES))
    per_ask = {s: 1000 * cpu_used[s] / max(1, len(latencies)) for s in SERVICES}
    print("  CPU ms per answer  " + "  ".join(f"{s} {per_ask[s]:.1f}" for s in SERVICES))
    cores = sum(cpu_used.values()) / window
    print(f"  CPU used           {cores:.2f} cores by the services; machine load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000, 5500])
    parser.add_argument("--duration", type=float, default=25.0, help="seconds per level, warm-up included")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--drivers", type=int, default=2, help="client processes")
    parser.add_argument("--llm-latency", type=float, default=2.0)
    parser.add_argument(
        "--env", action="append", default=[], metavar="RAG_X=VALUE", help="extra service setting (repeatable)"
    )
    args = parser.parse_args()
    _raise_open_file_limit()

    backends = ProductionBackends()
    llm: subprocess.Popen[bytes] | None = None
    embedder: subprocess.Popen[bytes] | None = None
    processes: PlatformProcesses | None = None
    try:
        backends.start()
        llm, url = start_llm_double(args.llm_latency)
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
        env.update(item.split("=", 1) for item in args.env)
        processes = PlatformProcesses(Path(tempfile.mkdtemp(prefix="ragplatform-bench-")), extra_env=env)
        processes.start_all()
        key = processes.create_api_key("bench")
        asyncio.run(ingest_corpus(processes.gateway, key))
        print(f"platform up: {', '.join(SERVICES)} as separate processes; LLM test double at {args.llm_latency:g} s")
        for streams in args.streams:
            run_level(processes, key, streams, args.drivers, args.duration, args.warmup, args.llm_latency)
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
