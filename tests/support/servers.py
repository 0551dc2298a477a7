"""Real servers for integration tests: PostgreSQL 15, PgBouncer, Redis 7 and moto's S3 server.

Each starts once per test session on a free loopback port and stops when the session ends;
each test gets its own database, key namespace or bucket. Every server object has `stop()`,
`start()` and `restart()` (same port, same data) for fault tests. Nothing is skipped: a missing
binary fails the test with the Debian or pip package to install (`.ci/install-system-packages.sh`
installs the Debian ones).

PostgreSQL and PgBouncer refuse to run as root, so when the tests run as root they run as the
`postgres` user (`runuser -u postgres --`) in a directory that user owns.

Fixtures:
  postgres_server / pgbouncer_server   session servers (PgBouncer in transaction pooling mode)
  postgres_database                    a fresh database; `.bouncer_url` goes through PgBouncer
  module_postgres_database             one database for a whole test module
  redis_server                         session Redis (no persistence)
  redis_namespace                      a unique key prefix for one test
  start_redis                          factory for a dedicated Redis (e.g. with AOF) for one test
  moto_s3_server / s3_bucket           session moto S3 server and a fresh bucket per test
  s3_admin                             a boto3 client on the moto server (set-up, inspection)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_SECONDS = 30.0


# --- helpers -------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(path: str | Path, install_hint: str) -> str:
    """The binary's path; fail (never skip) with how to install it when it is missing."""
    found = str(path) if Path(path).is_absolute() and Path(path).exists() else shutil.which(str(path))
    if not found:
        pytest.fail(
            f"{path} is not installed; install it with `{install_hint}` "
            "(or run .ci/install-system-packages.sh) and run the tests again",
            pytrace=False,
        )
    return found


def wait_for_port(port: int, what: str, log: Path | None = None, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s\n{tail}")


def wait_until_closed(port: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.02)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def as_postgres_user(argv: list[str]) -> list[str]:
    """`argv` run as the `postgres` user when we are root (initdb, pg_ctl and pgbouncer refuse
    root), else as ourselves."""
    if not _running_as_root():
        return argv
    require_binary("runuser", "apt-get install -y util-linux")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "there is no `postgres` user to run PostgreSQL as; install PostgreSQL with "
            "`apt-get install -y postgresql` (it creates the user)",
            pytrace=False,
        )
    return ["runuser", "-u", "postgres", "--", *argv]


def _owned_temp_dir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if _running_as_root():
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stdout}\n{result.stderr}")


# --- PostgreSQL ----------------------------------------------------------------------------------
class PostgresServer:
    """A PostgreSQL 15 cluster in a temporary directory, superuser `postgres`, trust auth on
    127.0.0.1. Durability is switched off (fsync) because test data is thrown away."""

    def __init__(self) -> None:
        self.initdb = require_binary(PG_BIN / "initdb", "apt-get install -y postgresql")
        self.pg_ctl = require_binary(PG_BIN / "pg_ctl", "apt-get install -y postgresql")
        self.psql = require_binary(PG_BIN / "psql", "apt-get install -y postgresql")
        self.root = _owned_temp_dir("ragplatform-pg-")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        _run(
            as_postgres_user(
                [self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            "initdb",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            as_postgres_user([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"]),
            "pg_ctl start",
        )
        wait_for_port(self.port, "PostgreSQL", self.log)

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a crash-free restart."""
        subprocess.run(
            as_postgres_user([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
        )
        wait_until_closed(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql (directly, not through PgBouncer); return its output."""
        result = subprocess.run(
            as_postgres_user(
                [
                    self.psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-tA",
                    "-c",
                    statement,
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {statement}\n{result.stderr}")
        return result.stdout.strip()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PgBouncerServer:
    """PgBouncer in transaction pooling mode in front of `postgres`: every database name is
    forwarded (a `*` entry), so per-test databases need no configuration."""

    def __init__(self, postgres: PostgresServer) -> None:
        self.binary = require_binary("pgbouncer", "apt-get install -y pgbouncer")
        self.postgres = postgres
        self.root = _owned_temp_dir("ragplatform-pgbouncer-")
        self.port = free_port()
        self.log = self.root / "pgbouncer.log"
        self.pidfile = self.root / "pgbouncer.pid"
        self.config = self.root / "pgbouncer.ini"
        userlist = self.root / "userlist.txt"
        userlist.write_text('"postgres" ""\n')
        self.config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={postgres.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 1000\n"
            # SHOW STATS on the admin console (benchmarks count statements per request).
            "stats_users = postgres\n"
            "default_pool_size = 40\n"
            # Retry a failed server login after 1 s (default 15 s), so a restarted PostgreSQL
            # is used again quickly.
            "server_login_retry = 1\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.pidfile}\n"
        )
        if _running_as_root():
            entry = pwd.getpwnam("postgres")
            for path in (self.config, userlist):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        _run(as_postgres_user([self.binary, "-d", str(self.config)]), "pgbouncer")
        wait_for_port(self.port, "PgBouncer", self.log)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.02)
        wait_until_closed(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def total_query_count(self) -> int:
        """SQL statements PgBouncer has passed to PostgreSQL so far, over every database but its
        admin console (`SHOW STATS` there, which speaks only the simple query protocol: psql)."""
        psql = require_binary(PG_BIN / "psql", "apt-get install -y postgresql")
        output = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "pgbouncer",
                "-A",
                "-F",
                ",",
                "-c",
                "SHOW STATS",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
        columns = output[0].split(",")
        column, database = columns.index("total_query_count"), columns.index("database")
        rows = [line.split(",") for line in output[1:] if line.count(",") == len(columns) - 1]
        # Not the admin console's own row: it counts these SHOW STATS.
        return sum(int(row[column]) for row in rows if row[database] != "pgbouncer")

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text().strip())

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class PostgresDatabase:
    name: str
    direct_url: str  # straight to PostgreSQL (admin work)
    bouncer_url: str  # through PgBouncer in transaction mode (what services use)


# --- Redis ---------------------------------------------------------------------------------------
class RedisServer:
    """redis-server on 127.0.0.1. Without `appendonly`, a restart loses every key (Redis's
    behaviour without persistence); with it, the append-only file survives restarts."""

    def __init__(self, appendonly: bool = False, password: str = "") -> None:
        self.binary = require_binary("redis-server", "apt-get install -y redis-server")
        self.port = free_port()
        self.appendonly = appendonly
        self.password = password  # clients must AUTH with it (`url` leaves it out)
        self.root = Path(tempfile.mkdtemp(prefix="ragplatform-redis-"))
        self.log = self.root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("Redis is not running")
        return self._process.pid

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.root)]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        argv += ["--logfile", str(self.log)]
        argv += ["--requirepass", self.password] if self.password else []
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, "Redis", self.log)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: Redis flushes the append-only file and exits
            process.wait(timeout=START_TIMEOUT_SECONDS)
        wait_until_closed(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --- moto S3 -------------------------------------------------------------------------------------
class MotoS3Server:
    """moto's S3 server (an in-memory S3 API). A restart loses every bucket."""

    def __init__(self) -> None:
        local = Path(sys.executable).parent / "moto_server"
        self.binary = require_binary(
            local if local.exists() else "moto_server", "pip install 'moto[s3]' flask flask-cors"
        )
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="ragplatform-moto-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the moto S3 server is not running")
        return self._process.pid

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, "moto S3 server", self.log)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=START_TIMEOUT_SECONDS)
        wait_until_closed(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)


# Credentials moto accepts (it checks none); never real ones.
MOTO_ACCESS_KEY_ID = "testing"
MOTO_SECRET_ACCESS_KEY = "testing"
MOTO_REGION = "us-east-1"


# --- fixtures ------------------------------------------------------------------------------------
S = TypeVar("S", PostgresServer, PgBouncerServer, RedisServer, MotoS3Server)


@contextlib.contextmanager
def running(server: S) -> Iterator[S]:
    """Start a server for the block; stop it and remove its files after."""
    server.start()
    try:
        yield server
    finally:
        server.remove()


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running(PostgresServer()) as server:
        yield server


@pytest.fixture(scope="session")
def pgbouncer_server(postgres_server: PostgresServer) -> Iterator[PgBouncerServer]:
    with running(PgBouncerServer(postgres_server)) as bouncer:
        yield bouncer


@contextlib.contextmanager
def fresh_database(postgres: PostgresServer, bouncer: PgBouncerServer) -> Iterator[PostgresDatabase]:
    """Create an empty database, yield it, drop it (connections and all) afterwards."""
    name = unique_name("test_")
    # FILE_COPY: ~0.2 s instead of ~1 s for WAL_LOG (the default), because the tiny template need
    # not be written to the WAL.
    postgres.sql(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
    try:
        yield PostgresDatabase(name, postgres.url(name), bouncer.url(name))
    finally:
        with contextlib.suppress(RuntimeError):  # the server may be down after a failed fault test
            postgres.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, pgbouncer_server: PgBouncerServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for one test, dropped afterwards."""
    with fresh_database(postgres_server, pgbouncer_server) as database:
        yield database


@pytest.fixture(scope="module")
def module_postgres_database(
    postgres_server: PostgresServer, pgbouncer_server: PgBouncerServer
) -> Iterator[PostgresDatabase]:
    """One database shared by a module's tests (for tests that make their own tenants)."""
    with fresh_database(postgres_server, pgbouncer_server) as database:
        yield database


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running(RedisServer()) as server:
        yield server


@pytest.fixture
def redis_namespace() -> str:
    """A key prefix no other test uses, so tests share the session Redis without cleaning up."""
    return unique_name("test:")


@pytest.fixture
def start_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start a dedicated Redis for one test (e.g. `start_redis(appendonly=True)` for a restart
    that keeps its data); stopped when the test ends."""
    started: list[RedisServer] = []

    def start(appendonly: bool = False) -> RedisServer:
        server = RedisServer(appendonly=appendonly)
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.remove()


@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[MotoS3Server]:
    with running(MotoS3Server()) as server:
        yield server


@pytest.fixture(scope="session")
def s3_admin(moto_s3_server: MotoS3Server) -> Any:
    """A plain boto3 S3 client on the moto server, for test set-up and inspection (made once:
    creating boto3 clients is slow)."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=moto_s3_server.endpoint_url,
        region_name=MOTO_REGION,
        aws_access_key_id=MOTO_ACCESS_KEY_ID,
        aws_secret_access_key=MOTO_SECRET_ACCESS_KEY,
    )


@pytest.fixture
def s3_bucket(s3_admin: Any) -> str:
    """A new, empty bucket on the moto server (created with boto3, not the adapter under test)."""
    name = unique_name("test-")
    s3_admin.create_bucket(Bucket=name)
    return name
