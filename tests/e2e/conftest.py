"""End-to-end fixtures: the platform as separate processes on embedded backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragplatform.client import TERMINAL_STATES, GatewayClient
from tests.support.platform_processes import PlatformProcesses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docs"
CORPUS = FIXTURES / "corpus"
INVALID = FIXTURES / "invalid"
UPLOAD_LIMIT = 200_000


@dataclass
class RunningPlatform:
    processes: PlatformProcesses
    key_a: str
    key_b: str
    corpus_jobs: dict[str, str]  # filename -> job id (tenant A)

    @property
    def gateway(self) -> str:
        return self.processes.gateway

    def client(self, key: str | None = None) -> GatewayClient:
        return GatewayClient(self.gateway, self.key_a if key is None else key, timeout=30)


async def wait_for_jobs(client: GatewayClient, job_ids: list[str], timeout: float = 90.0) -> dict[str, int]:
    """Job id -> final state; fails the test if any is still running at the timeout."""
    final: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(job_ids):
        assert time.monotonic() < deadline, f"jobs did not finish in {timeout}s: {set(job_ids) - set(final)}"
        for job_id in job_ids:
            if job_id not in final:
                job = await client.get_job(job_id)
                if job.state in TERMINAL_STATES:
                    final[job_id] = job.state
        await asyncio.sleep(0.1)
    return final


async def ingest_corpus(platform: RunningPlatform) -> None:
    async with platform.client() as client:
        for path in sorted(CORPUS.iterdir()):
            reply = await client.ingest_file(path, {"corpus": "e2e"})
            platform.corpus_jobs[path.name] = reply.job.job_id
        await wait_for_jobs(client, list(platform.corpus_jobs.values()))


def run_platform_with_corpus(processes: PlatformProcesses) -> Iterator[RunningPlatform]:
    """Start the processes, make a key for two tenants, ingest the corpus as tenant A; on a
    failure print each service's log tail; always stop them (a fixture body to yield from)."""
    try:
        processes.start_all()
        running = RunningPlatform(processes, processes.create_api_key("acme"), processes.create_api_key("globex"), {})
        asyncio.run(ingest_corpus(running))
        yield running
    except BaseException:
        for service in processes.processes:
            print(f"--- {service} log ---\n{processes.log_text(service)[-4000:]}")
        raise
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    processes = PlatformProcesses(
        tmp_path_factory.mktemp("platform"),
        extra_env={"RAG_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "RAG_ANSWER_CACHE_TTL_SECONDS": "600"},
    )
    yield from run_platform_with_corpus(processes)
