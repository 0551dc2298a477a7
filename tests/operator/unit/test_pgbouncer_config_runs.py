"""The rendered PgBouncer configuration, run for real: the ConfigMap's pgbouncer.ini and the init
container's userlist script start a real PgBouncer (Debian package) in front of a real
PostgreSQL (the session fixture), and a client logs in through it the way the services do.

Only what cannot exist outside a pod is adapted: the listen address and port (a free loopback
port) and the directory of userlist.txt (a temporary one instead of the in-memory volume).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ragplatform_operator.builders.pgbouncer import AUTH_DIR
from tests.operator.unit.conftest import find, load_example, render
from tests.support.servers import PostgresServer, as_postgres_user, free_port, unique_name, wait_for_port

PASSWORD = 'p"a $w0rd'  # a quote, a space and a dollar: the userlist escaping must hold


def _owned_by_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def platform_database(postgres_server: PostgresServer) -> Iterator[tuple[str, str]]:
    database, user = unique_name("rag_db"), unique_name("rag_user")
    postgres_server.sql(f"CREATE ROLE {user} LOGIN PASSWORD 'unused-trust-auth'")
    postgres_server.sql(f"CREATE DATABASE {database} OWNER {user}")
    yield database, user
    postgres_server.sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    postgres_server.sql(f"DROP ROLE IF EXISTS {user}")


@pytest.fixture
def running_pgbouncer(postgres_server: PostgresServer, platform_database: tuple[str, str]) -> Iterator[int]:
    database, user = platform_database
    raw = load_example("minimal")["spec"]
    raw["postgres"].update(host="127.0.0.1", port=postgres_server.port, database=database, user=user)
    children = render(raw)
    ini = find(children, "ConfigMap", "demo-pgbouncer")["data"]["pgbouncer.ini"]
    init = find(children, "Deployment", "demo-pgbouncer")["spec"]["template"]["spec"]["initContainers"][0]

    root = Path(tempfile.mkdtemp(prefix="ragplatform-rendered-pgbouncer-"))
    _owned_by_postgres(root)
    # The init container's own script writes userlist.txt from the password Secret's value.
    subprocess.run(
        ["sh", "-c", init["command"][2].replace(AUTH_DIR, str(root))],
        env={"PATH": "/usr/bin:/bin", "PGBOUNCER_USER": user, "PGBOUNCER_PASSWORD": PASSWORD},
        check=True,
    )
    port = free_port()
    ini = re.sub(r"(?m)^listen_addr = .*$", "listen_addr = 127.0.0.1", ini)
    ini = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {port}", ini)
    config = root / "pgbouncer.ini"
    config.write_text(ini.replace(AUTH_DIR, str(root)))
    for path in (config, root / "userlist.txt"):
        _owned_by_postgres(path)
    log = root / "pgbouncer.log"
    with log.open("w") as output:
        process = subprocess.Popen(as_postgres_user(["pgbouncer", str(config)]), stdout=output, stderr=output)
    try:
        wait_for_port(port, "rendered PgBouncer", log)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


async def _connect(port: int, database: str, user: str, password: str) -> Any:
    # As the services connect: no server-side statement cache under transaction pooling.
    return await asyncpg.connect(
        host="127.0.0.1", port=port, user=user, password=password, database=database, statement_cache_size=0
    )


async def test_services_log_in_through_the_rendered_pool(
    running_pgbouncer: int, platform_database: tuple[str, str]
) -> None:
    database, user = platform_database
    connection = await _connect(running_pgbouncer, database, user, PASSWORD)
    try:
        async with connection.transaction():
            await connection.execute("CREATE TABLE probe (id int)")
            await connection.execute("INSERT INTO probe VALUES (1), (2)")
        assert await connection.fetchval("SELECT count(*) FROM probe") == 2
        assert await connection.fetchval("SELECT current_user") == user
    finally:
        await connection.close()


async def test_the_pool_refuses_a_wrong_password(running_pgbouncer: int, platform_database: tuple[str, str]) -> None:
    database, user = platform_database

    # PgBouncer answers a failed SCRAM exchange with "SASL authentication failed".
    with pytest.raises(asyncpg.PostgresError, match="authentication failed"):
        await _connect(running_pgbouncer, database, user, "not-the-password")
