"""The production shape: every service its own process, configured only through environment
variables, on real servers — PostgreSQL 15 through PgBouncer (transaction pooling), Redis 7
(queue, rate limits, answer cache), moto's S3 server (uploads) — with embeddings and answers from
an OpenAI-compatible endpoint (a TEST DOUBLE, see openai_double.py; no model runs here) and
vectors in `QdrantServerStore` talking HTTP to a Qdrant REST TEST DOUBLE backed by qdrant-client's
local mode (see qdrant_double.py: no Qdrant server binary exists here, and the adapter takes only
an http(s) URL).

One platform and one set of servers serve the whole session (`production` fixture): starting
them costs tens of seconds on two cores. The fault tests (test_faults.py) run against it too,
each in a tenant of its own; the platform must still work after them, which is part of what they
check. The settings below are the fault tests' (short visibility timeout, few attempts, short LLM
timeout, a fallback model); they change nothing the other tests rely on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ragplatform.client import GatewayClient
from tests.e2e.conftest import CORPUS, wait_for_jobs
from tests.e2e.production.openai_double import FaultyOpenAIDouble
from tests.e2e.production.qdrant_double import QdrantRestDouble
from tests.support.platform_processes import PlatformProcesses, ProductionBackends
from tests.support.threaded_server import ThreadedServer


@dataclass
class ProductionPlatform:
    processes: PlatformProcesses
    backends: ProductionBackends
    double: FaultyOpenAIDouble
    qdrant: QdrantRestDouble
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> API key
    corpus_jobs: dict[str, str] = field(default_factory=dict)  # filename -> job id (tenant "acme")

    @property
    def gateway(self) -> str:
        return self.processes.gateway

    def key(self, tenant: str) -> str:
        """An API key for `tenant` (created through the CLI, in PostgreSQL, on first use)."""
        if tenant not in self.keys:
            self.keys[tenant] = self.processes.create_api_key(tenant)
        return self.keys[tenant]

    def client(self, tenant: str = "acme", timeout: float = 30.0) -> GatewayClient:
        return GatewayClient(self.gateway, self.key(tenant), timeout=timeout)

    def new_tenant(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def ingest_corpus(platform: ProductionPlatform) -> None:
    async with platform.client() as client:
        for path in sorted(CORPUS.iterdir()):
            reply = await client.ingest_file(path, {"corpus": "production"})
            platform.corpus_jobs[path.name] = reply.job.job_id
        await wait_for_jobs(client, list(platform.corpus_jobs.values()), timeout=60)


FAULT_TEST_SETTINGS = {
    # High enough that no test here is rate-limited by accident.
    "RAG_RATE_LIMIT_RPS": "1000",
    "RAG_RATE_LIMIT_BURST": "1000",
    # A job held by a killed worker is taken over after 3 s.
    "RAG_VISIBILITY_TIMEOUT_SECONDS": "3",
    "RAG_JOB_MAX_ATTEMPTS": "3",
    "RAG_RETRY_BACKOFF_SECONDS": "0.2",
    # Small chunks, one per embeddings request: a job lasts long enough to be interrupted.
    "RAG_CHUNK_TOKENS": "48",
    "RAG_CHUNK_OVERLAP_TOKENS": "4",
    "RAG_EMBED_BATCH_SIZE": "1",
    "RAG_LLM_TIMEOUT_SECONDS": "2",
    "RAG_LLM_MAX_RETRIES": "0",
    "RAG_LLM_FALLBACK_MODEL": "test-fallback-model",
    "RAG_GRACE_PERIOD_SECONDS": "5",
}


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionPlatform]:
    backends = ProductionBackends()
    double = ThreadedServer(FaultyOpenAIDouble(), "openai-double")
    qdrant = ThreadedServer(QdrantRestDouble(), "qdrant-double")
    processes: PlatformProcesses | None = None
    try:
        backends.start()
        double.start()
        qdrant.start()
        env = backends.env(
            double.server.base_url,
            RAG_VECTOR_URL=qdrant.server.url,
            **FAULT_TEST_SETTINGS,
        )
        processes = PlatformProcesses(tmp_path_factory.mktemp("production"), extra_env=env)
        processes.start_all()
        platform = ProductionPlatform(processes, backends, double.server, qdrant.server)
        asyncio.run(ingest_corpus(platform))
        yield platform
    except BaseException:
        if processes is not None:
            for service in processes.logs:
                print(f"--- {service} log ---\n{processes.log_text(service)[-4000:]}")
        raise
    finally:
        if processes is not None:
            processes.stop_all()
        double.stop()
        qdrant.stop()
        backends.stop()
