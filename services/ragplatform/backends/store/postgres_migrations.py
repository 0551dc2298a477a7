"""PostgreSQL schema migrations: the versioned SQL files in `migrations/`, applied in order.

Callers may rely on: `apply_migrations` is idempotent and safe to run from many replicas at once
(they serialise on a transaction-scoped advisory lock, which - unlike a session lock - is safe
through PgBouncer in transaction pooling mode); all pending migrations apply in ONE transaction,
so a failure leaves the schema as it was; a database newer than this release, or older with
migration switched off, raises `FailedPrecondition` saying what to run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from ragplatform.domain.errors import FailedPrecondition

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key: the ASCII of "ragmigr" - any constant nobody else uses.
MIGRATION_LOCK_KEY = 0x7261676D696772
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class SqlMigration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[SqlMigration]:
    """Every NNNN_name.sql file of the migrations package, by version (numbers must be unique)."""
    migrations = []
    for entry in resources.files("ragplatform.backends.store.migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            migrations.append(SqlMigration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise AssertionError(f"two migration files share a version: {versions}")
    return migrations


def latest_version() -> int:
    return load_migrations()[-1].version


async def _applied_version(conn: asyncpg.Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


def _newer(current: int, latest: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"the PostgreSQL schema is at version {current}, newer than this release knows ({latest}); "
        "run a ragplatform release at least as new as the one that migrated it"
    )


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration; return the versions applied (empty when up to date)."""
    migrations = load_migrations()
    latest = migrations[-1].version
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await _applied_version(conn)
        if current > latest:
            raise _newer(current, latest)
        applied = []
        for migration in migrations:
            if migration.version <= current:
                continue
            # No parameters: the simple query protocol runs the file's statements in one go.
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
            )
            applied.append(migration.version)
            log.info("postgres schema migrated", version=migration.version, name=migration.name)
    return applied


async def check_schema(conn: asyncpg.Connection) -> None:
    """Raise `FailedPrecondition` unless the schema is exactly this release's."""
    latest = latest_version()
    current = await _applied_version(conn)
    if current > latest:
        raise _newer(current, latest)
    if current < latest:
        raise FailedPrecondition(
            f"the PostgreSQL schema is at version {current} but this release needs {latest}, and "
            "RAG_STORE_MIGRATE is false; run `ragplatform migrate` (or start once with RAG_STORE_MIGRATE=true)"
        )
