"""Process-level faults in the production shape. Each must end in a clear error or a retry, and
nothing lost: a worker SIGKILLed mid-job, Redis and PostgreSQL restarted under load (services
keep running and recover by themselves), an LLM endpoint that times out, and a poison document
that is dead-lettered, then replayed with `ragplatform jobs replay` once its cause is fixed.

The platform and servers are the session's (`production`, see conftest.py); tests that need
isolation use their own tenant."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import pytest
import redis

from ragplatform.client import TERMINAL_STATES as TERMINAL
from ragplatform.client import GatewayClient
from ragplatform.v1 import common_pb2
from tests.e2e.conftest import wait_for_jobs
from tests.e2e.production.conftest import ProductionPlatform

pytestmark = pytest.mark.e2e

ZEPHYR_QUESTION = "What is the maximum pressure of the Zephyr-9 pump?"


class Restartable(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...


def paragraphs(topic: str, count: int) -> bytes:
    words = ["harbor", "ferry", "pump", "drone", "station", "cafe", "aurora", "kestrel", "zephyr", "nordlys"]
    lines = [f"{topic} paragraph {i}: " + " ".join(words[(i + j) % 10] for j in range(24)) + "." for i in range(count)]
    return "\n\n".join(lines).encode()


async def ask_all(client: GatewayClient, question: str, **kwargs: object) -> list[object]:
    return [m async for m in client.ask(question, **kwargs)]  # type: ignore[arg-type]


async def eventually(action: object, timeout: float = 30.0) -> None:
    """Retry `action()` (a coroutine function) until it succeeds; fail with its last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await action()  # type: ignore[operator]
            return
        except grpc.aio.AioRpcError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no recovery within {timeout:.0f} s: {exc.code()} {exc.details()}") from exc
            await asyncio.sleep(0.5)


# --- the LLM endpoint times out ---------------------------------------------------------------------


async def test_a_model_that_times_out_is_answered_by_the_fallback_model(production: ProductionPlatform) -> None:
    async with production.client() as client:
        messages = await ask_all(client, ZEPHYR_QUESTION, model="slow-model")
    done = messages[-1].done  # type: ignore[attr-defined]
    assert done.model == "test-fallback-model"
    assert "zephyr-9-pump-manual.md" in {c.filename for c in done.citations}
    assert production.double.requests_for("slow-model"), "the primary model was never tried"


async def test_an_endpoint_too_slow_for_every_model_gives_a_clear_unavailable_error(
    production: ProductionPlatform,
) -> None:
    production.double.chat_latency = 30.0
    try:
        async with production.client() as client:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ask_all(client, "What is the Zephyr-9 impeller made of? (slow endpoint)")
    finally:
        production.double.chat_latency = 0.0
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    details = info.value.details() or ""
    assert "did not answer within" in details
    assert "test-model" in details
    assert "test-fallback-model" in details


# --- a poison document -----------------------------------------------------------------------------


async def test_a_poison_document_is_dead_lettered_then_replayed_once_fixed(production: ProductionPlatform) -> None:
    tenant = production.new_tenant("poison")
    marker = "POISON-" + tenant
    production.double.poison_marker = marker
    try:
        async with production.client(tenant) as client:
            reply = await client.ingest_bytes(
                "poison.txt", f"The {marker} relay at Vega Point hums at 77 hertz.".encode()
            )
            job_id = reply.job.job_id
            states = await wait_for_jobs(client, [job_id], timeout=60)
            job = await client.get_job(job_id)
        assert states[job_id] == common_pb2.JOB_STATE_FAILED
        assert job.attempts == 3  # RAG_JOB_MAX_ATTEMPTS
        assert "gave up after 3 attempt" in job.error
        assert "ragplatform jobs replay" in job.error
        assert production.backends.redis is not None
        r = redis.Redis.from_url(production.backends.redis.url, decode_responses=True)
        try:
            dead: list[tuple[str, dict[str, str]]] = r.xrange("ragplatform:queue:ingestion:dead")  # type: ignore[assignment]
        finally:
            r.close()
        assert [fields["job_id"] for _id, fields in dead] == [job_id]
    finally:
        production.double.poison_marker = ""  # the cause is fixed

    output = await asyncio.to_thread(production.processes.run_cli, "jobs", "replay")
    assert "replayed 1 job(s)" in output
    async with production.client(tenant) as client:
        states = await wait_for_jobs(client, [job_id], timeout=60)
        assert states[job_id] == common_pb2.JOB_STATE_SUCCEEDED
        messages = await ask_all(client, "What does the relay at Vega Point hum at?")
    assert "poison.txt" in {c.filename for c in messages[-1].done.citations}  # type: ignore[attr-defined]


# --- a worker killed mid-job -------------------------------------------------------------------------


async def test_a_worker_killed_mid_job_leaves_the_job_to_complete_without_duplicate_chunks(
    production: ProductionPlatform,
) -> None:
    tenant = production.new_tenant("killed")
    production.double.embedding_latency = 0.1  # one chunk per request: a job of several seconds
    try:
        async with production.client(tenant) as client:
            reply = await client.ingest_bytes("long.txt", paragraphs("Killed", 36))
            job_id = reply.job.job_id
            deadline = time.monotonic() + 60
            while True:
                job = await client.get_job(job_id)
                assert job.state != common_pb2.JOB_STATE_SUCCEEDED, "the job finished before the worker was killed"
                if job.chunks_done >= 3:
                    break
                assert time.monotonic() < deadline, "the job never started"
                await asyncio.sleep(0.02)
            production.processes.kill("ingestion-worker")  # SIGKILL: no chance to release the job
            killed_at = (await client.get_job(job_id)).chunks_done
            assert 0 < killed_at < job.chunks_total
            production.processes.start("ingestion-worker")
            production.double.embedding_latency = 0.0
            states = await wait_for_jobs(client, [job_id], timeout=60)
            job = await client.get_job(job_id)
            passages = (await client.search("Killed paragraph harbor ferry pump", top_k=50)).passages
    finally:
        production.double.embedding_latency = 0.0
    assert states[job_id] == common_pb2.JOB_STATE_SUCCEEDED
    assert job.attempts >= 2
    assert job.chunks_done == job.chunks_total
    assert job.chunks_total < 50  # so the search below sees every chunk of the tenant
    indexes = [p.chunk_index for p in passages]
    assert sorted(indexes) == list(range(job.chunks_total)), "missing or duplicate chunks in the vector store"
    assert production.qdrant.count_points("ragplatform_chunks", tenant) == job.chunks_total


async def final_states(client: GatewayClient, job_ids: list[str], timeout: float) -> dict[str, int]:
    """Job id -> state, once every job is finished or `timeout` has passed (then some are not)."""
    deadline = time.monotonic() + timeout
    while True:
        states: dict[str, int] = {j: (await client.get_job(j)).state for j in job_ids}
        if set(states.values()) <= set(TERMINAL) or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.2)


# --- Redis and PostgreSQL restarted under load --------------------------------------------------------


@dataclass
class Load:
    """Asks (tenant acme, which has the corpus) and uploads (a tenant of its own) in a loop."""

    platform: ProductionPlatform
    tenant: str
    outcomes: Counter[str] = field(default_factory=Counter)  # "ask OK", "ingest UNAVAILABLE", ...
    errors: dict[str, str] = field(default_factory=dict)  # status -> one example message
    jobs: list[str] = field(default_factory=list)  # accepted uploads
    rejected_uploads: list[tuple[str, bytes]] = field(default_factory=list)
    _count: int = 0

    async def run(self, stop: asyncio.Event, askers: int = 4, uploaders: int = 2) -> None:
        async with self.platform.client(timeout=20) as asks, self.platform.client(self.tenant, timeout=20) as ups:
            await asyncio.gather(
                *(self._asker(asks, stop) for _ in range(askers)),
                *(self._uploader(ups, stop) for _ in range(uploaders)),
            )

    def _record(self, what: str, exc: grpc.aio.AioRpcError | None) -> None:
        status = "OK" if exc is None else exc.code().name
        self.outcomes[f"{what} {status}"] += 1
        if exc is not None:
            self.errors.setdefault(f"{what} {status}", exc.details() or "")

    async def _asker(self, client: GatewayClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._count += 1
            try:
                # A question of its own each time: no answer-cache hits, every hop is exercised.
                await ask_all(client, f"{ZEPHYR_QUESTION} (load {self._count})")
            except grpc.aio.AioRpcError as exc:
                self._record("ask", exc)
                await asyncio.sleep(0.1)
            else:
                self._record("ask", None)

    async def _uploader(self, client: GatewayClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._count += 1
            name = f"load-{self._count}.txt"
            data = f"Load document {self._count}: the quokka relay hums at {self._count} hertz.".encode()
            try:
                reply = await client.ingest_bytes(name, data)
            except grpc.aio.AioRpcError as exc:
                self._record("ingest", exc)
                self.rejected_uploads.append((name, data))
                await asyncio.sleep(0.1)
            else:
                self._record("ingest", None)
                self.jobs.append(reply.job.job_id)
                await asyncio.sleep(0.05)


async def restart_under_load(platform: ProductionPlatform, server: Restartable, what: str) -> Load:
    """Run the load, take `server` down for two seconds and back up, keep the load going while
    everything recovers; then check recovery with the same processes, and that nothing was lost."""
    pids = {service: platform.processes.pid(service) for service in platform.processes.processes}
    load = Load(platform, platform.new_tenant(what))
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(1.5)

        def outage() -> None:
            server.stop()
            time.sleep(2.0)
            server.start()

        await asyncio.to_thread(outage)
        await asyncio.sleep(3.0)
    finally:
        stop.set()
        await running

    # Every failure is UNAVAILABLE with a message that says what to do, never a hang or INTERNAL.
    failures = {k: v for k, v in load.outcomes.items() if not k.endswith(" OK")}
    assert set(failures) <= {"ask UNAVAILABLE", "ingest UNAVAILABLE"}, (load.outcomes, load.errors)
    assert load.outcomes["ask OK"] > 0, load.outcomes
    assert load.outcomes["ingest OK"] > 0, load.outcomes

    # The same processes recover by themselves.
    async with platform.client() as client:
        await eventually(lambda: ask_all(client, f"{ZEPHYR_QUESTION} (after {what})"))
        messages = await ask_all(client, f"{ZEPHYR_QUESTION} (after {what}, again)")
    assert "zephyr-9-pump-manual.md" in {c.filename for c in messages[-1].done.citations}  # type: ignore[attr-defined]
    assert {s: platform.processes.pid(s) for s in platform.processes.processes} == pids
    assert all(p.poll() is None for p in platform.processes.processes.values())

    # Nothing lost: every accepted upload is ingested, every refused one succeeds when retried.
    async with platform.client(load.tenant) as client:
        for name, data in load.rejected_uploads:
            reply = await client.ingest_bytes(name, data)
            load.jobs.append(reply.job.job_id)
        states = await final_states(client, load.jobs, timeout=60)
        bad = {j: await client.get_job(j) for j, s in states.items() if s != common_pb2.JOB_STATE_SUCCEEDED}
    if bad:
        print(platform.processes.log_text("ingestion-worker")[-6000:])
    assert not bad, {j: (common_pb2.JobState.Name(job.state), job.attempts, job.error) for j, job in bad.items()}
    print(f"{what} restart: {dict(load.outcomes)}; examples: {load.errors}")
    return load


async def test_redis_restarted_under_load_then_everything_recovers_and_no_job_is_lost(
    production: ProductionPlatform,
) -> None:
    assert production.backends.redis is not None
    load = await restart_under_load(production, production.backends.redis, "redis")
    for status, message in load.errors.items():
        assert "Redis" in message or "retry" in message.lower(), (status, message)


async def test_postgres_restarted_under_load_fails_fast_then_recovers_without_a_process_restart(
    production: ProductionPlatform,
) -> None:
    assert production.backends.postgres is not None
    load = await restart_under_load(production, production.backends.postgres, "postgres")
    for status, message in load.errors.items():
        assert "retry" in message.lower() or "try again" in message.lower(), (status, message)
