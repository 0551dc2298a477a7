"""A secret planted in every RAG_* URL must never come out: not in start-up errors, not in any
log line, not in an error a client receives, not in metrics. The services run as processes, as
in a container, with endpoints that fail (closed ports) and endpoints that work (the
OpenAI-compatible TEST DOUBLE for embeddings, reached through a URL carrying credentials)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ragplatform.client import GatewayClient
from ragplatform.v1 import common_pb2
from tests.e2e.conftest import wait_for_jobs
from tests.support.openai_test_server import OpenAITestServer
from tests.support.platform_processes import PlatformProcesses, free_port
from tests.support.servers import RedisServer
from tests.support.threaded_server import ThreadedServer

pytestmark = pytest.mark.e2e

SECRET = f"pl4nted-{uuid.uuid4().hex[:12]}"


def _closed_port() -> int:
    return free_port()  # bound and released at once: nothing listens there


# One case per URL setting. Each service must refuse to start (the endpoint is unreachable or
# the URL invalid) with a message naming the setting, and without the secret.
START_UP_CASES: dict[str, tuple[str, dict[str, str], str]] = {
    "store-url-invalid-scheme": ("conversation", {"RAG_STORE_URL": f"mysql://rag:{SECRET}@db/rag"}, "RAG_STORE_URL"),
    "store-url-unreachable": (
        "conversation",
        {"RAG_STORE_URL": f"postgresql://rag:{SECRET}@127.0.0.1:{_closed_port()}/rag"},
        "RAG_STORE_URL",
    ),
    "vector-url-unreachable": (
        "retrieval",
        {"RAG_VECTOR_URL": f"http://qdrant:{SECRET}@127.0.0.1:{_closed_port()}"},
        "RAG_VECTOR_URL",
    ),
    "s3-endpoint-unreachable": (
        "ingestion",
        {
            "RAG_BLOB_URL": "s3://bucket",
            "RAG_S3_ENDPOINT_URL": f"http://s3user:{SECRET}@127.0.0.1:{_closed_port()}",
            "RAG_S3_ACCESS_KEY_ID": "id",
            "RAG_S3_SECRET_ACCESS_KEY": "key",
        },
        "",
    ),
    "queue-url-unreachable": (
        "ingestion",
        {"RAG_QUEUE_URL": f"redis://:{SECRET}@127.0.0.1:{_closed_port()}/0"},
        "RAG_QUEUE_URL",
    ),
    "embedding-url-unreachable": (
        "ingestion-worker",
        {
            "RAG_EMBEDDER": "openai",
            "RAG_EMBEDDING_URL": f"http://embed:{SECRET}@127.0.0.1:{_closed_port()}/v1",
            "RAG_EMBEDDING_TIMEOUT_SECONDS": "2",
        },
        "RAG_EMBEDDING_URL",
    ),
}


def test_start_up_failures_name_the_setting_but_never_the_secret(tmp_path: Path) -> None:
    processes = PlatformProcesses(tmp_path)
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name, (service, env, _setting) in START_UP_CASES.items():
        output = tmp_path / f"{name}.out"
        with output.open("wb") as sink:
            running[name] = (
                subprocess.Popen(
                    [sys.executable, "-m", "ragplatform", "serve", service],
                    env={**processes.env(service), "RAG_DATA_DIR": str(tmp_path / name), **env},
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                ),
                output,
            )
    # Wait for each to report its failure. (A service may then linger: a backend opened before
    # the failing one can keep a thread alive. That is not what this test is about.)
    deadline = time.monotonic() + 90
    outputs: dict[str, str] = {}
    while len(outputs) < len(running) and time.monotonic() < deadline:
        for name, (process, path) in running.items():
            text = path.read_text(errors="replace")
            if name not in outputs and (process.poll() is not None or "error:" in text):
                outputs[name] = text
        time.sleep(0.2)
    for process, _ in running.values():
        process.kill()
        process.wait()
    assert set(outputs) == set(running), f"still starting after 90 s: {set(running) - set(outputs)}"
    for name, text in outputs.items():
        assert "error:" in text, f"{name}: the service started although its endpoint is unreachable"
        assert SECRET not in text, f"{name} printed the secret:\n{text}"
        setting = START_UP_CASES[name][2]
        if setting:
            assert setting in text, f"{name}: the error does not name {setting}:\n{text[-2000:]}"


@pytest.fixture(scope="module")
def platform_with_secret_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformProcesses, int]]:
    """Embeddings from a working endpoint, answers from one that is down, the queue, rate limits
    and answer cache in a Redis that requires the secret as its password; every URL carries
    credentials, and every process serves metrics."""
    redis = RedisServer(password=SECRET)
    redis.start()
    redis_url = redis.url.replace("redis://", f"redis://:{SECRET}@")
    embeddings = ThreadedServer(OpenAITestServer(), "openai-double")
    embeddings.start()
    llm_port = _closed_port()
    embed_url = embeddings.server.base_url.replace("http://", f"http://embed:{SECRET}@")
    processes = PlatformProcesses(
        tmp_path_factory.mktemp("secrets"),
        extra_env={
            "RAG_EMBEDDER": "openai",
            "RAG_EMBEDDING_URL": embed_url,
            "RAG_EMBEDDING_MODEL": "test-embedding-model",
            "RAG_LLM": "openai",
            "RAG_LLM_URL": f"http://llmuser:{SECRET}@127.0.0.1:{llm_port}/v1",
            "RAG_LLM_TIMEOUT_SECONDS": "2",
            "RAG_LLM_MAX_RETRIES": "0",
            "RAG_METRICS_ENABLED": "true",
            "RAG_METRICS_PORT": "0",
            "RAG_QUEUE_URL": redis_url,
            "RAG_REDIS_URL": redis_url,
        },
    )
    try:
        processes.start_all()
        yield processes, llm_port
    finally:
        processes.stop_all()
        embeddings.stop()
        redis.remove()


def _metrics_text(processes: PlatformProcesses, service: str) -> str:
    for line in processes.log_text(service).splitlines():
        if '"serving"' in line:
            port = json.loads(line)["metrics_port"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                return str(reply.read().decode())
    raise AssertionError(f"{service} logged no 'serving' line with its metrics port")


def test_running_services_never_show_the_secret_or_the_internal_endpoint(
    platform_with_secret_urls: tuple[PlatformProcesses, int],
) -> None:
    processes, llm_port = platform_with_secret_urls
    key = processes.create_api_key("acme")

    async def scenario() -> str:
        async with GatewayClient(processes.gateway, key, timeout=30) as client:
            reply = await client.ingest_bytes("pump.txt", b"The Zephyr-9 pump runs at 12 bar at most.")
            final = await wait_for_jobs(client, [reply.job.job_id], timeout=60)
            assert final[reply.job.job_id] == common_pb2.JOB_STATE_SUCCEEDED, "the working endpoint was not used"
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                async for _ in client.ask("What pressure does the Zephyr-9 pump reach?"):
                    pass
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            return failure.value.details() or ""

    details = asyncio.run(scenario())
    # The client hears that generation is unavailable, and nothing about where it lives.
    assert "generation" in details
    for leaked in (SECRET, "llmuser", str(llm_port), "127.0.0.1"):
        assert leaked not in details, f"{leaked!r} reached the client: {details}"
    time.sleep(0.5)  # the last log lines
    logs = {service: processes.log_text(service) for service in processes.logs}
    for service, text in logs.items():
        assert SECRET not in text, f"the {service} log holds the secret"
        assert SECRET not in _metrics_text(processes, service), f"{service}'s metrics hold the secret"
    # The operator still learns which endpoint failed: its URL, redacted, is in the log.
    assert f"http://***@127.0.0.1:{llm_port}/v1" in logs["generation"]
