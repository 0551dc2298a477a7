"""Start the platform as separate processes (`python -m ragplatform serve <service>`), as
containers run it: one process per service, configured only through environment variables.

Used by the end-to-end tests (embedded backends) and the production-shape tests (real
PostgreSQL/PgBouncer/Redis/moto S3 passed in through `extra_env`).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.servers import (
    MOTO_ACCESS_KEY_ID,
    MOTO_REGION,
    MOTO_SECRET_ACCESS_KEY,
    MotoS3Server,
    PgBouncerServer,
    PostgresServer,
    RedisServer,
)

SERVICES = ("retrieval", "generation", "conversation", "ingestion", "ingestion-worker", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(count: int = 6) -> int:
    """A base port whose `count` consecutive ports are all free now (`ragplatform dev --port-base`
    takes six). Looked for below Linux's ephemeral range (32768-60999), where the machine's own
    outgoing connections keep taking ports between our check and the services' bind."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no block of {count} free ports found")


def wait_serving(address: str, timeout: float = 180.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process for {address} exited with {process.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = str(exc.code())
            time.sleep(0.1)
    raise TimeoutError(f"{address} was not SERVING within {timeout}s (last: {last})")


@dataclass
class PlatformProcesses:
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # Settings for one service only (service -> variables), applied after `extra_env`.
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # CPUs the services run on (None: wherever the scheduler likes); benchmarks pin them.
    cpus: set[int] | None = None
    # Serve each service's Prometheus metrics on its own port (see `metrics_ports`).
    metrics: bool = False
    metrics_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            self.ports.setdefault(service, free_port())
            if self.metrics:
                self.metrics_ports.setdefault(service, free_port())

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    @property
    def gateway(self) -> str:
        return self.address("gateway")

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(
            {
                "RAG_DATA_DIR": str(self.data_dir),
                "RAG_GRPC_HOST": "127.0.0.1",
                "RAG_GRPC_PORT": str(self.ports[service]),
                "RAG_METRICS_ENABLED": "false",
                "RAG_LOG_FORMAT": "json",
                "RAG_DRAIN_DELAY_SECONDS": "0",
                "RAG_INTERNAL_TOKEN": "e2e-internal-token",
                "RAG_INGESTION_ADDR": self.address("ingestion"),
                "RAG_RETRIEVAL_ADDR": self.address("retrieval"),
                "RAG_GENERATION_ADDR": self.address("generation"),
                "RAG_CONVERSATION_ADDR": self.address("conversation"),
                "RAG_EMBEDDER": "hashing",
                "RAG_LLM": "extractive",
                "RAG_POLL_SECONDS": "0.1",
                "RAG_RETRY_BACKOFF_SECONDS": "0.2",
            }
        )
        if self.metrics:
            env.update({"RAG_METRICS_ENABLED": "true", "RAG_METRICS_PORT": str(self.metrics_ports[service])})
        env.update(self.extra_env)
        env.update(self.service_env.get(service, {}))
        return env

    def start(self, service: str) -> None:
        self.launch(service)
        self._wait(service)

    def _wait(self, service: str) -> None:
        """Wait until SERVING; on failure, the error carries the end of the service's log."""
        try:
            wait_serving(self.address(service), process=self.processes[service])
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{service}: {exc}\n--- {service} log ---\n{self.log_text(service)[-3000:]}") from None

    def launch(self, service: str) -> None:
        log_path = self.data_dir / f"{service}.log"
        self.logs[service] = log_path
        log = log_path.open("ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "ragplatform", "serve", service],
            env=self.env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if self.cpus:
            # Popen returns once the child has exec'd, before Python starts any thread: every
            # thread it makes inherits this.
            os.sched_setaffinity(self.processes[service].pid, self.cpus)

    def start_all(self) -> None:
        """Launch every process at once (none needs another to start), then wait for each."""
        for service in SERVICES:
            self.launch(service)
        for service in SERVICES:
            self._wait(service)

    def kill(self, service: str, sig: int = signal.SIGKILL) -> int:
        process = self.processes.pop(service)
        process.send_signal(sig)
        return process.wait(timeout=30)

    def stop_all(self) -> None:
        for service in reversed(SERVICES):
            process = self.processes.pop(service, None)
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def create_api_key(self, tenant: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "ragplatform", "keys", "create", "--tenant", tenant],
            env=self.env("gateway"),
            capture_output=True,
            check=True,
            timeout=60,
        )
        return result.stdout.decode().strip().splitlines()[-1]

    def log_text(self, service: str) -> str:
        path = self.logs.get(service)
        return path.read_text(errors="replace") if path and path.exists() else ""

    # --- additions for the production-shape tests and benchmarks ---------------------------------

    def pid(self, service: str) -> int:
        """The running process id of `service` (for memory figures and signals)."""
        return self.processes[service].pid

    def run_cli(self, *args: str, service: str = "ingestion-worker", timeout: float = 60.0) -> str:
        """Run `python -m ragplatform ARGS` configured like `service` (env only); return its
        output. Raises `subprocess.CalledProcessError` (with the output) when it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "ragplatform", *args],
            env=self.env(service),
            capture_output=True,
            check=False,
            timeout=timeout,
        )
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, output=output)
        return output


@dataclass
class ProductionBackends:
    """Dedicated real servers for the production shape: PostgreSQL 15 behind PgBouncer
    (transaction pooling), Redis 7 with an append-only file (a restart keeps the queue, as a
    production Redis would), and moto's S3 server. Dedicated, not the session fixtures, because
    fault tests restart them.

    `env(openai_url)` is the whole RAG_ environment a service needs to use them, with embeddings
    and generation at an OpenAI-compatible endpoint (`openai_url` ends in `/v1`)."""

    database: str = "ragplatform"
    bucket: str = "ragplatform-blobs"
    postgres: PostgresServer | None = None
    pgbouncer: PgBouncerServer | None = None
    redis: RedisServer | None = None
    s3: MotoS3Server | None = None

    def start(self) -> None:
        import boto3  # type: ignore[import-untyped]

        self.postgres = PostgresServer()
        self.postgres.start()
        self.postgres.sql(f"CREATE DATABASE {self.database}")
        self.pgbouncer = PgBouncerServer(self.postgres)
        self.pgbouncer.start()
        self.redis = RedisServer(appendonly=True)
        self.redis.start()
        self.s3 = MotoS3Server()
        self.s3.start()
        boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            region_name=MOTO_REGION,
            aws_access_key_id=MOTO_ACCESS_KEY_ID,
            aws_secret_access_key=MOTO_SECRET_ACCESS_KEY,
        ).create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        for server in (self.pgbouncer, self.postgres, self.redis, self.s3):
            if server is not None:
                server.remove()

    def env(self, openai_url: str, **overrides: str) -> dict[str, str]:
        if self.pgbouncer is None or self.redis is None or self.s3 is None:
            raise RuntimeError("start() the backends before asking for their environment")
        env = {
            # Through PgBouncer (transaction pooling), as the operator wires it; trust auth here,
            # so no RAG_STORE_PASSWORD.
            "RAG_STORE_URL": self.pgbouncer.url(self.database),
            "RAG_QUEUE_URL": self.redis.url,
            "RAG_REDIS_URL": self.redis.url,
            "RAG_BLOB_URL": f"s3://{self.bucket}",
            "RAG_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "RAG_S3_REGION": MOTO_REGION,
            "RAG_S3_ACCESS_KEY_ID": MOTO_ACCESS_KEY_ID,
            "RAG_S3_SECRET_ACCESS_KEY": MOTO_SECRET_ACCESS_KEY,
            "RAG_EMBEDDER": "openai",
            "RAG_EMBEDDING_URL": openai_url,
            "RAG_EMBEDDING_MODEL": "test-embedding-model",
            "RAG_EMBEDDING_DIMENSION": "384",
            "RAG_LLM": "openai",
            "RAG_LLM_URL": openai_url,
            "RAG_LLM_MODEL": "test-model",
        }
        env.update(overrides)
        return env
