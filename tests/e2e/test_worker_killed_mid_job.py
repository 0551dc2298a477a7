"""A worker stopped in the middle of a job loses nothing, and the vector store holds each chunk
exactly once: killed (SIGKILL), the job completes after a restart; stopped (SIGTERM, as a
scale-down or a rollout does), the job in hand finishes within the grace period, or is released
at once for another worker when the grace period runs out."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from ragplatform.backends.vectors.factory import open_vector_store
from ragplatform.client import GatewayClient
from ragplatform.core.settings import RetrievalSettings, load_settings
from ragplatform.v1 import common_pb2
from tests.e2e.conftest import wait_for_jobs
from tests.support.platform_processes import PlatformProcesses

pytestmark = pytest.mark.e2e

WORDS = ["harbor", "ferry", "pump", "drone", "station", "cafe", "aurora", "kestrel", "zephyr", "nordlys"]


def long_document(paragraphs: int) -> bytes:
    lines = []
    for i in range(paragraphs):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40))
        lines.append(f"Paragraph {i} says {words}.\n")
    return "\n".join(lines).encode()


async def count_vectors(data_dir: Path, tenant: str) -> int:
    settings = load_settings(RetrievalSettings, data_dir=data_dir, embedder="hashing")
    store = open_vector_store(settings)
    await store.open(settings.embedding_dimension)
    try:
        return await store.count(tenant)
    finally:
        await store.close()


async def test_killed_worker_job_completes_after_restart_without_duplicates(tmp_path: Path) -> None:
    processes = PlatformProcesses(
        tmp_path / "platform",
        extra_env={
            "RAG_EMBED_BATCH_SIZE": "1",
            "RAG_CHUNK_TOKENS": "32",
            "RAG_CHUNK_OVERLAP_TOKENS": "4",
            "RAG_VISIBILITY_TIMEOUT_SECONDS": "2",
        },
    )
    try:
        processes.start_all()
        key = processes.create_api_key("acme")
        async with GatewayClient(processes.gateway, key, timeout=30) as client:
            reply = await client.ingest_bytes("long.txt", long_document(400))
            job_id = reply.job.job_id
            deadline = time.monotonic() + 60
            while True:
                job = await client.get_job(job_id)
                assert job.state != common_pb2.JOB_STATE_SUCCEEDED, "the job finished before the worker was killed"
                if job.chunks_done > 5:
                    break
                assert time.monotonic() < deadline, "the job never started"
                await asyncio.sleep(0.02)
            processes.kill("ingestion-worker")
            killed_at = (await client.get_job(job_id)).chunks_done
            assert 0 < killed_at < job.chunks_total
            processes.start("ingestion-worker")
            states = await wait_for_jobs(client, [job_id], timeout=120)
            assert states[job_id] == common_pb2.JOB_STATE_SUCCEEDED
            job = await client.get_job(job_id)
            assert job.attempts >= 2
            assert job.chunks_done == job.chunks_total
            documents = (await client.list_documents()).documents
            assert documents[0].chunk_count == job.chunks_total
    finally:
        processes.stop_all()
    assert await count_vectors(processes.data_dir, "acme") == job.chunks_total


async def _busy_worker_job(client: GatewayClient, document: bytes) -> common_pb2.Job:
    """Upload `document` and wait until a worker is in the middle of its job."""
    reply = await client.ingest_bytes("long.txt", document)
    deadline = time.monotonic() + 60
    while True:
        job = await client.get_job(reply.job.job_id)
        assert job.state != common_pb2.JOB_STATE_SUCCEEDED, "the job finished before the worker was stopped"
        if job.chunks_done > 5:
            return job
        assert time.monotonic() < deadline, "the job never started"
        await asyncio.sleep(0.02)


def _slow_ingestion_env(grace_seconds: float) -> dict[str, str]:
    # A visibility timeout far longer than the test: a redelivery can only come from the
    # worker releasing the message itself, never from the timeout reclaiming it.
    return {
        "RAG_EMBED_BATCH_SIZE": "1",
        "RAG_CHUNK_TOKENS": "32",
        "RAG_CHUNK_OVERLAP_TOKENS": "4",
        "RAG_VISIBILITY_TIMEOUT_SECONDS": "600",
        "RAG_GRACE_PERIOD_SECONDS": str(grace_seconds),
    }


async def test_sigterm_lets_the_job_in_hand_finish_within_the_grace_period(tmp_path: Path) -> None:
    processes = PlatformProcesses(tmp_path / "platform", extra_env=_slow_ingestion_env(grace_seconds=120))
    try:
        processes.start_all()
        key = processes.create_api_key("acme")
        async with GatewayClient(processes.gateway, key, timeout=30) as client:
            busy = await _busy_worker_job(client, long_document(300))
            exit_code = await asyncio.to_thread(processes.kill, "ingestion-worker", signal.SIGTERM)
            assert exit_code == 0, processes.log_text("ingestion-worker")[-2000:]
            job = await client.get_job(busy.job_id)
            # The worker exited only after finishing the job it held, in its first attempt.
            assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job
            assert job.attempts == 1
            assert job.chunks_done == job.chunks_total
    finally:
        processes.stop_all()
    assert await count_vectors(processes.data_dir, "acme") == job.chunks_total


async def test_sigterm_past_the_grace_period_releases_the_job_for_another_worker(tmp_path: Path) -> None:
    processes = PlatformProcesses(tmp_path / "platform", extra_env=_slow_ingestion_env(grace_seconds=0.5))
    try:
        processes.start_all()
        key = processes.create_api_key("acme")
        async with GatewayClient(processes.gateway, key, timeout=30) as client:
            busy = await _busy_worker_job(client, long_document(400))
            exit_code = await asyncio.to_thread(processes.kill, "ingestion-worker", signal.SIGTERM)
            assert exit_code == 0, processes.log_text("ingestion-worker")[-2000:]
            released = await client.get_job(busy.job_id)
            assert released.state == common_pb2.JOB_STATE_QUEUED, released
            assert "the worker stopped; the job was released" in released.error, released
            # The next worker (a new pod) takes it at once: no visibility timeout to wait out.
            processes.start("ingestion-worker")
            states = await wait_for_jobs(client, [busy.job_id], timeout=120)
            assert states[busy.job_id] == common_pb2.JOB_STATE_SUCCEEDED
            job = await client.get_job(busy.job_id)
            assert job.attempts == 2
            assert job.chunks_done == job.chunks_total
    finally:
        processes.stop_all()
    assert await count_vectors(processes.data_dir, "acme") == job.chunks_total
