"""Ingestion throughput: what one worker process sustains against the raw embedder's rate, and
what the upload path takes from many concurrent uploaders — same machine, same run.

    python bench/ingest_throughput.py [--backends production|embedded] [--embedder hashing|minilm]
        [--documents 1000] [--uploaders 500] [--worker-concurrency 8,32] [--service-cpus 0]
        [--worker-cpus 0] [--harness-cpus 1] [--env RAG_X=V] [--profile DIR]

Backends. `production` (default): PostgreSQL 15 through PgBouncer (transaction pooling), Redis 7
Streams, moto's S3 server, and Qdrant — the Qdrant server is a TEST DOUBLE here
(tests/e2e/production/qdrant_double.py: Qdrant's REST API served over HTTP, backed by
qdrant-client's local mode), because no Qdrant server binary can be installed on this machine.
`embedded`: SQLite store and queue, local blobs, qdrant-edge in process.

Phases, one run:
1. floor: the raw embedder's chunks/s on the same documents' chunks (in this process, pinned to
   the service CPUs);
2. for each `--worker-concurrency` level (default: the setting's default), on fresh documents:
   uploads — `--uploaders` concurrent uploaders (one driver process, a gRPC channel per 100) push
   `--documents` distinct small documents through the gateway while no worker runs: accepted
   uploads/s, p50/p99 upload latency, errors by status, CPU per accepted upload per process (the
   driver's too); then the drain — one worker process with RAG_WORKER_CONCURRENCY at that level
   starts and ingests the queued jobs: documents/s from its SERVING to the last job's finish,
   CPU ms per document of every process (and their sum against the machine's cores), and where a
   job's time went (the worker's `ragplatform_ingestion_job_stage_seconds`: receive, claim,
   pipeline, index, finish, ack; documents per shared chunk write).

CPU pinning (printed per process): the services on `--service-cpus`, the worker on
`--worker-cpus` (default the same), and this harness, the upload driver, the backends and the
doubles (PostgreSQL, PgBouncer, Redis, moto, the Qdrant double) on `--harness-cpus`, which must
not overlap the worker's. Loopback only; bounded in count (`--documents`) and time (`--timeout`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.process
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ask_throughput import backend_counts
from bench.process_cpu import CpuMeter
from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.factory import open_store
from ragplatform.client import TERMINAL_STATES, GatewayClient, jittered, rate_limit_delay
from ragplatform.core.settings import StoreSettings, WorkerSettings, load_settings
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.models import JobState
from ragplatform.domain.parsing import parse_document
from ragplatform.v1 import gateway_pb2, gateway_pb2_grpc
from tests.e2e.production.qdrant_double import QdrantRestDouble
from tests.support.platform_processes import PlatformProcesses, ProductionBackends, wait_serving

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "docs" / "corpus"
UPLOADERS_PER_CHANNEL = 100
MAX_UPLOAD_ATTEMPTS = 30
WORKER = "ingestion-worker"
STAGE_METRIC = "ragplatform_ingestion_job_stage_seconds"
CALL_METRIC = "ragplatform_ingestion_worker_call_jobs"


def make_documents(count: int, suffix: str, first: int = 0) -> list[tuple[str, bytes]]:
    """Distinct small documents (~4 KB, 6 chunks) built from the test corpus, as Markdown (.md)
    or plain text (.txt), numbered from `first`; distinct so none is deduplicated."""
    base = "\n\n".join(p.read_text() for p in sorted(CORPUS.glob("*.md")) + sorted(CORPUS.glob("*.txt")))
    return [
        (f"doc-{i}.{suffix}", f"# Document {i}\n\n{base}\n\nDocument number {i}.\n".encode())
        for i in range(first, first + count)
    ]


# --- CPU placement and accounting -----------------------------------------------------------------


@contextlib.contextmanager
def on_cpus(cpus: set[int]) -> Iterator[None]:
    """Run the block with this thread pinned to `cpus`: processes and threads started inside
    inherit the set. The thread's previous set is restored after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --- phase 1: the floor ------------------------------------------------------------------------------


async def raw_rate(embedder_name: str, documents: list[tuple[str, bytes]]) -> tuple[int, float]:
    settings = load_settings(WorkerSettings, embedder=embedder_name)
    embedder = make_embedder(settings)
    texts = [
        c.text
        for name, data in documents
        for c in chunk_text(
            parse_document(data, name, "").text,
            embedder.count_tokens,
            settings.chunk_tokens,
            settings.chunk_overlap_tokens,
        )
    ]
    await embedder.embed_documents(texts[:2])  # load the model outside the timing
    started = time.perf_counter()
    for i in range(0, len(texts), settings.embed_batch_size):
        await embedder.embed_documents(texts[i : i + settings.embed_batch_size])
    return len(texts), time.perf_counter() - started


# --- phase 2: concurrent uploaders (a driver process) -----------------------------------------------


@dataclass
class UploadResult:
    job_ids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # of accepted calls
    refused: int = 0  # refusals with a retry hint, retried after it (admission control)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    driver_cpu: float = 0.0  # CPU seconds of the upload driver process


async def _upload_all(gateway: str, key: str, documents: list[tuple[str, bytes]], uploaders: int) -> UploadResult:
    result = UploadResult()
    channels = [
        # A channel each, not a shared subchannel: separate connections like separate clients.
        grpc.aio.insecure_channel(gateway, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, (uploaders + UPLOADERS_PER_CHANNEL - 1) // UPLOADERS_PER_CHANNEL))
    ]
    stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
    metadata = (("authorization", f"Bearer {key}"),)
    todo = iter(documents)

    async def uploader(index: int) -> None:
        stub = stubs[index % len(stubs)]
        for name, data in todo:  # the shared iterator hands each document to one uploader
            header = gateway_pb2.IngestMetadata(filename=name)
            requests = [gateway_pb2.IngestRequest(metadata=header), gateway_pb2.IngestRequest(chunk=data)]
            for _attempt in range(MAX_UPLOAD_ATTEMPTS):
                began = time.perf_counter()
                try:
                    reply = await stub.Ingest(iter(requests), metadata=metadata, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    delay = rate_limit_delay(exc)
                    if delay is not None:  # refused at once with a hint: back off as clients do
                        result.refused += 1
                        await asyncio.sleep(jittered(delay))
                        continue
                    result.errors[exc.code().name] += 1
                    result.error_examples.setdefault(exc.code().name, (exc.details() or "")[:300])
                    break
                result.latencies.append(time.perf_counter() - began)
                result.job_ids.append(reply.job.job_id)
                break
            else:
                result.errors["REFUSED_EVERY_ATTEMPT"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(uploader(i) for i in range(uploaders)))
    result.seconds = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return result


def _upload_driver(
    gateway: str,
    key: str,
    documents: list[tuple[str, bytes]],
    uploaders: int,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(_upload_all(gateway, key, documents, uploaders))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.driver_cpu = usage.ru_utime + usage.ru_stime
    out.put(result)


def run_uploads(gateway: str, key: str, documents: list[tuple[str, bytes]], uploaders: int) -> UploadResult:
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    driver = multiprocessing.get_context("fork").Process(
        target=_upload_driver, args=(gateway, key, documents, uploaders, out)
    )
    driver.start()
    result: UploadResult = out.get()
    driver.join()
    return result


# --- phase 3: one worker drains the queue ------------------------------------------------------------


@dataclass
class DrainResult:
    documents: int  # finished within the measured window (from the first finish seen to the last)
    chunks: int
    seconds: float
    cpu: dict[str, float]  # process (tree) -> CPU seconds during the window
    failed: dict[str, str]
    stages: dict[str, tuple[float, float]]  # the worker's job stage -> (sum of seconds, count)
    write_documents: tuple[float, float]  # documents per shared chunk write: (sum, count)
    call_jobs: dict[str, tuple[float, float]]  # the worker's shared call (claim, success, ack) -> jobs (sum, count)
    # SQL statements PgBouncer passed on and Redis commands during the window, the harness's own
    # progress polls left out (production backends only).
    backend_calls: tuple[int, int] | None = None


async def unfinished_jobs(store: Store) -> int:
    return await store.count_jobs(JobState.QUEUED) + await store.count_jobs(JobState.RUNNING)


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy on `pid` until `stop_profiler`: collapsed stacks (flamegraph.pl / speedscope input) in
    `output`, sampled from CPUs other than the process's (py-spy needs ptrace: run as root or
    with CAP_SYS_PTRACE)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "200"]
    command += ["--nonblocking", "--format", "raw", "--output", str(output)]
    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Off the profiled process's CPUs where there are others, so sampling does not slow it.
    if others := set(range(os.cpu_count() or 1)) - os.sched_getaffinity(pid):
        os.sched_setaffinity(profiler.pid, others)
    return profiler


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    """Stop a `start_profiler` and wait for it to write its output."""
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def worker_stages(
    metrics_port: int,
) -> tuple[dict[str, tuple[float, float]], tuple[float, float], dict[str, tuple[float, float]]]:
    """From the worker's /metrics: per job stage (sum of seconds, count), the documents per
    shared chunk write (sum, count), and the jobs per shared store or queue call (per call)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    stages: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {}
    writes = [0.0, 0.0]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (f"{STAGE_METRIC}_sum", f"{STAGE_METRIC}_count"):
                pair = stages.setdefault(sample.labels["stage"], [0.0, 0.0])
                pair[0 if sample.name.endswith("_sum") else 1] = sample.value
            elif sample.name in (f"{CALL_METRIC}_sum", f"{CALL_METRIC}_count"):
                pair = calls.setdefault(sample.labels["call"], [0.0, 0.0])
                pair[0 if sample.name.endswith("_sum") else 1] = sample.value
            elif sample.name == "ragplatform_ingestion_index_write_documents_sum":
                writes[0] = sample.value
            elif sample.name == "ragplatform_ingestion_index_write_documents_count":
                writes[1] = sample.value
    return (
        {stage: (pair[0], pair[1]) for stage, pair in stages.items()},
        (writes[0], writes[1]),
        {call: (pair[0], pair[1]) for call, pair in calls.items()},
    )


async def drain(
    processes: PlatformProcesses,
    key: str,
    job_ids: list[str],
    timeout: float,
    meter_pids: dict[str, int],
    worker_cpus: set[int],
    profile: Path | None = None,
    backends: ProductionBackends | None = None,
) -> DrainResult:
    """Start one worker (pinned to `worker_cpus`), wait until it has finished every job, stop it.
    The window measured runs from the first time the harness sees a job finished (polling every
    0.1 s from the worker's launch: its start-up is not in the window) to the last job's finish;
    the jobs finished before the window opened are left out of the rate and of the CPU per
    document alike. Progress is read from the store directly (two COUNTs a poll, from the harness
    CPUs), not through the gateway, so no service spends CPU on watching."""
    env = processes.env(WORKER)
    store = await open_store(
        load_settings(StoreSettings, store_url=env.get("RAG_STORE_URL", ""), data_dir=processes.data_dir)
    )
    try:
        processes.cpus = worker_cpus
        processes.launch(WORKER)
        launched = time.time()
        meter = CpuMeter({"worker": processes.pid(WORKER), **meter_pids}, trees={"postgres"})
        profilers: list[subprocess.Popen[bytes]] = []
        started, left_at_start = 0.0, len(job_ids)
        counts_at_start, polls = (0, 0), 0
        while time.time() - launched < timeout:
            left = await unfinished_jobs(store)
            polls += 1 if started else 0
            if not started and left < len(job_ids):
                started, left_at_start = time.time(), left
                meter.start()
                counts_at_start = backend_counts(backends) if backends else (0, 0)
                if profile:
                    profiled = {"worker": processes.pid(WORKER), "retrieval": processes.pid("retrieval")}
                    profiled |= {name: pid for name, pid in meter_pids.items() if name == "qdrant double"}
                    profilers = [
                        start_profiler(pid, profile / f"{name.replace(' ', '-')}.txt") for name, pid in profiled.items()
                    ]
            if not left:
                break
            if processes.processes[WORKER].poll() is not None:
                raise RuntimeError(f"the worker exited with {processes.processes[WORKER].returncode}")
            await asyncio.sleep(0.1 if not started else 0.25)
        meter.stop()
        backend_calls = None
        if backends is not None:
            await asyncio.sleep(1.0)  # the ack and the last statements land; nothing else runs now
            statements, commands = backend_counts(backends)
            # Each progress poll is two COUNT statements; the Redis INFO reads are one command each.
            backend_calls = (statements - counts_at_start[0] - 2 * polls, commands - counts_at_start[1] - 1)
        for profiler in profilers:
            stop_profiler(profiler)
        if left := await unfinished_jobs(store):
            raise RuntimeError(f"{left} job(s) still unfinished after {timeout:.0f} s")
        stages, writes, calls = worker_stages(processes.metrics_ports[WORKER])
    finally:
        await store.close()
        processes.kill(WORKER, signal.SIGTERM)
    async with GatewayClient(processes.gateway, key, timeout=60) as client:
        jobs = await client.find_jobs(set(job_ids))
    finish = {job_id: job.updated_at.ToDatetime(tzinfo=UTC).timestamp() for job_id, job in jobs.items()}
    chunks = sum(job.chunks_done for job in jobs.values()) * left_at_start // max(1, len(jobs))
    failed = {job_id: job.error for job_id, job in jobs.items() if job.state not in TERMINAL_STATES or job.error}
    return DrainResult(
        left_at_start, chunks, max(finish.values()) - started, meter.used, failed, stages, writes, calls, backend_calls
    )


# --- the Qdrant double, in a process of its own ----------------------------------------------------


def _serve_qdrant_double(out: Connection) -> None:
    async def serve() -> None:
        double = QdrantRestDouble()
        await double.start()
        out.send(double.url)
        await asyncio.Event().wait()  # until terminated

    asyncio.run(serve())


def start_qdrant_double() -> tuple[multiprocessing.process.BaseProcess, str]:
    """The Qdrant REST TEST DOUBLE in its own process (its CPU is then its own, and no GIL is
    shared with this harness); returns the process and its URL."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=_serve_qdrant_double, args=(sender,), daemon=True)
    process.start()
    if not receiver.poll(60):
        process.kill()
        raise RuntimeError("the Qdrant test double did not start within 60 s")
    return process, str(receiver.recv())


# --- the run ------------------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of `values`; 0 for none."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


STAGE_ORDER = ("receive", "claim", "pipeline", "index", "finish", "ack")


def pinned_cpus(pid: int) -> str:
    with contextlib.suppress(OSError):
        return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(pid)))
    return "?"


def print_uploads(uploads: UploadResult, uploaders: int, upload_cpu: dict[str, float]) -> None:
    accepted = len(uploads.latencies)
    print(
        f"{uploaders} uploaders    : {accepted / uploads.seconds:10.1f} uploads/s accepted  "
        f"p50 {1000 * statistics.median(uploads.latencies or [0.0]):.0f} ms  "
        f"p99 {1000 * percentile(uploads.latencies, 99):.0f} ms  "
        f"errors {sum(uploads.errors.values())} {dict(uploads.errors)}"
    )
    accepted_ms = {name: 1000 * seconds / max(1, accepted) for name, seconds in upload_cpu.items()}
    accepted_ms["upload driver"] = 1000 * uploads.driver_cpu / max(1, accepted)
    print(
        f"  refused with a retry hint and retried: {uploads.refused}; CPU ms per accepted upload: "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in accepted_ms.items())
    )
    for status, example in uploads.error_examples.items():
        print(f"  e.g. {status}: {example}")


def print_drain(result: DrainResult, raw: float, concurrency: str) -> None:
    docs_per_s = result.documents / result.seconds
    chunks_per_s = result.chunks / result.seconds
    print(
        f"1 worker, drain     : {docs_per_s:10.1f} docs/s  {chunks_per_s:10.1f} chunks/s  "
        f"({result.documents} docs, {result.chunks} chunks in {result.seconds:.2f} s; "
        f"RAG_WORKER_CONCURRENCY={concurrency})"
    )
    per_doc = {name: 1000 * seconds / max(1, result.documents) for name, seconds in result.cpu.items()}
    print("CPU ms per doc      : " + ", ".join(f"{name} {ms:.2f}" for name, ms in per_doc.items()))
    total = sum(per_doc.values())
    print(
        f"  all processes     : {total:.2f} ms per doc, so at most {1000 * len(ALL_CPUS) / total:.0f} docs/s on"
        f" {len(ALL_CPUS)} cores; they used {total * docs_per_s / 1000:.2f} cores during the drain"
    )
    print(f"worker CPU bound    : {1000 / max(per_doc['worker'], 1e-9):10.1f} docs/s per core")
    print(f"drain / raw (chunks): {chunks_per_s / raw:10.3f}")
    stages = {name: result.stages.get(name, (0.0, 0.0)) for name in STAGE_ORDER}
    print(
        "job stages, mean ms : "
        + ", ".join(f"{name} {1000 * total_s / count:.2f}" for name, (total_s, count) in stages.items() if count)
        + (
            f"; documents per chunk write {result.write_documents[0] / result.write_documents[1]:.1f}"
            if result.write_documents[1]
            else ""
        )
    )
    if result.call_jobs:
        print(
            "jobs per call       : "
            + ", ".join(
                f"{call} {total / count:.1f}" for call, (total, count) in sorted(result.call_jobs.items()) if count
            )
            + " (a worker's concurrent jobs share their store and queue calls)"
        )
    if result.backend_calls is not None:
        statements, commands = result.backend_calls
        print(
            f"backend calls per doc: {statements / result.documents:.2f} SQL statements (via PgBouncer), "
            f"{commands / result.documents:.2f} Redis commands"
        )
    if result.failed:
        print(f"FAILED jobs         : {len(result.failed)}, e.g. {next(iter(result.failed.values()))}")


ALL_CPUS = set(range(os.cpu_count() or 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="production", choices=["production", "embedded"])
    parser.add_argument("--embedder", default="hashing", choices=["hashing", "minilm"])
    parser.add_argument("--documents", type=int, default=1000, help="documents uploaded, then drained, per level")
    parser.add_argument(
        "--format", default="txt", choices=["txt", "md"], help="document type (md adds Markdown parsing per document)"
    )
    parser.add_argument("--uploaders", type=int, default=500)
    parser.add_argument(
        "--worker-concurrency",
        default="",
        metavar="N[,N...]",
        help="RAG_WORKER_CONCURRENCY of the draining worker; several: one upload and drain per value "
        "(default: the setting's default)",
    )
    parser.add_argument("--service-cpus", default="0", help="CPUs for the platform's processes (e.g. 0 or 0,1)")
    parser.add_argument("--worker-cpus", default="", help="CPUs for the worker (default: --service-cpus)")
    parser.add_argument("--harness-cpus", default="1", help="CPUs for this harness, drivers, backends and doubles")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for the drain, seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the worker's, retrieval's and the Qdrant double's drain and ingestion's uploads into DIR",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="RAG_X=VALUE", help="extra service setting (repeatable)"
    )
    args = parser.parse_args()
    service_cpus = {int(c) for c in args.service_cpus.split(",")}
    worker_cpus = {int(c) for c in args.worker_cpus.split(",")} if args.worker_cpus else service_cpus
    harness_cpus = {int(c) for c in args.harness_cpus.split(",")}
    if worker_cpus & harness_cpus:
        parser.error("--worker-cpus must not share a CPU with --harness-cpus (the drivers and doubles)")
    levels = [level.strip() for level in args.worker_concurrency.split(",") if level.strip()] or [""]
    documents = make_documents(args.documents, args.format)

    with on_cpus(service_cpus):
        raw_chunks, raw_seconds = asyncio.run(raw_rate(args.embedder, documents))
    os.sched_setaffinity(0, harness_cpus)

    backends = ProductionBackends() if args.backends == "production" else None
    qdrant: multiprocessing.process.BaseProcess | None = None
    processes: PlatformProcesses | None = None
    try:
        env = {"RAG_EMBEDDER": args.embedder, "RAG_RATE_LIMIT_RPS": "100000", "RAG_RATE_LIMIT_BURST": "100000"}
        if backends is not None:
            backends.start()
            qdrant, qdrant_url = start_qdrant_double()
            env = backends.env("http://127.0.0.1:9/v1", RAG_VECTOR_URL=qdrant_url, **env)
        env["RAG_LOG_LEVEL"] = "warning"
        env.update(item.split("=", 1) for item in args.env)
        processes = PlatformProcesses(
            Path(tempfile.mkdtemp(prefix="ragplatform-ingest-bench-")), extra_env=env, metrics=True
        )
        processes.cpus = service_cpus
        for service in processes.ports:
            if service != WORKER:
                processes.launch(service)
        for service in processes.processes:
            wait_serving(processes.address(service), process=processes.processes[service])
        key = processes.create_api_key("bench")

        others = {"harness": os.getpid()}
        if qdrant is not None and qdrant.pid is not None:
            others["qdrant double"] = qdrant.pid
        if backends is not None and backends.postgres and backends.pgbouncer and backends.redis and backends.s3:
            others |= {
                "postgres": backends.postgres.pid,
                "pgbouncer": backends.pgbouncer.pid,
                "redis": backends.redis.pid,
                "moto s3": backends.s3.pid,
            }
        services = {name: processes.pid(name) for name in ("gateway", "ingestion", "retrieval")}
        raw = raw_chunks / raw_seconds
        print(
            f"backends={args.backends}"
            + (" (PostgreSQL via PgBouncer, Redis Streams, moto S3, Qdrant = REST TEST DOUBLE)" if backends else "")
            + f" embedder={args.embedder} documents={args.documents} per level .{args.format}"
        )
        print(
            "CPU pins: "
            + ", ".join(f"{name} [{pinned_cpus(pid)}]" for name, pid in {**services, **others}.items())
            + f", worker [{','.join(map(str, sorted(worker_cpus)))}], upload driver [{args.harness_cpus}]"
        )
        print(f"raw embedder        : {raw:10.1f} chunks/s  ({raw_chunks} chunks in {raw_seconds:.2f} s)")
        for number, level in enumerate(levels):
            batch = make_documents(args.documents, args.format, first=number * args.documents)
            upload_meter = CpuMeter(
                {"gateway": services["gateway"], "ingestion": services["ingestion"], **others}, trees={"postgres"}
            )
            profiler = (
                start_profiler(processes.pid("ingestion"), args.profile / "ingestion.txt")
                if args.profile and number == 0
                else None
            )
            upload_meter.start()
            uploads = run_uploads(processes.gateway, key, batch, args.uploaders)
            upload_meter.stop()
            stop_profiler(profiler)
            processes.service_env[WORKER] = {"RAG_WORKER_CONCURRENCY": level} if level else {}
            result = asyncio.run(
                drain(
                    processes,
                    key,
                    uploads.job_ids,
                    args.timeout,
                    {**services, **others},
                    worker_cpus,
                    args.profile if number == 0 else None,
                    backends,
                )
            )
            print(f"--- level {number + 1}: {len(uploads.job_ids)} uploads, then one worker drains them")
            print_uploads(uploads, args.uploaders, upload_meter.used)
            print_drain(result, raw, level or "default")
    finally:
        if processes is not None:
            processes.stop_all()
        if qdrant is not None:
            qdrant.terminate()
            qdrant.join(timeout=30)
        if backends is not None:
            backends.stop()


if __name__ == "__main__":
    main()
