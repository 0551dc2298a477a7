"""One SQLite database file shared by several processes: connections, transactions, schema.

`ragplatform serve` runs each service in its own process, all on one file (ingestion writes
documents and jobs, workers update jobs and take queue messages, conversation writes turns, the
gateway reads API keys). What makes that safe and quick:

* WAL journal: readers never block the writer, nor the writer readers.
* `busy_timeout`: a writer waits for the lock instead of failing at once.
* Short transactions; read-modify-write ones start with `BEGIN IMMEDIATE`, which takes the write
  lock up front: a deferred transaction that upgrades from read to write can fail with
  SQLITE_BUSY without waiting, which `busy_timeout` cannot help.
* A small retry when the lock is still held after the timeout, then `Unavailable`.

Each `SqliteDatabase` holds two connections, one for writes and one for reads, each guarded by an
asyncio lock: a connection has one transaction at a time, and coroutines must not interleave
statements inside another coroutine's transaction.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from ragplatform.backends.store.sqlite_schema import LATEST_VERSION, MIGRATIONS
from ragplatform.core.settings import StoreSettings
from ragplatform.domain.errors import FailedPrecondition, Unavailable

log = structlog.get_logger("ragplatform.store.sqlite")

T = TypeVar("T")
Transaction = Callable[[aiosqlite.Connection], Awaitable[T]]

DATABASE_FILENAME = "ragplatform.db"
_LOCK_RETRIES = 3
_RETRY_BASE_SECONDS = 0.05


def sqlite_path(settings: StoreSettings) -> Path:
    """The database file: the path in `RAG_STORE_URL=sqlite:///PATH`, else RAG_DATA_DIR/ragplatform.db.

    As in SQLAlchemy, `sqlite:///data/rag.db` is relative to the working directory and
    `sqlite:////var/lib/rag.db` (four slashes) is absolute.
    """
    url = settings.store_url
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path == ":memory:" or path.startswith("file:"):
            raise FailedPrecondition(
                f"RAG_STORE_URL={url!r}: several processes share the store, so it needs a file; "
                "use sqlite:///PATH/TO/FILE.db or leave RAG_STORE_URL empty"
            )
        return Path(path)
    return Path(settings.data_dir) / DATABASE_FILENAME


def now_us() -> int:
    """Now, in microseconds since the Unix epoch (the schema's unit of time)."""
    return time.time_ns() // 1000


def is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
    async with conn.execute(sql, tuple(params)) as cursor:
        row: sqlite3.Row | None = await cursor.fetchone()
        return row


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    async with conn.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())


async def execute(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run one statement; return the number of rows it changed."""
    async with conn.execute(sql, tuple(params)) as cursor:
        return int(cursor.rowcount)


class SqliteDatabase:
    """The shared file, opened with the pragmas above and the schema applied (when allowed)."""

    def __init__(self, path: Path, timeout_seconds: float = 5.0, migrate: bool = True) -> None:
        self.path = path
        self._timeout = timeout_seconds
        self._migrate = migrate
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> SqliteDatabase:
        return cls(sqlite_path(settings), settings.store_timeout_seconds, settings.store_migrate)

    async def open(self) -> None:
        """Connect, set the pragmas and bring the schema up to date. Idempotent.

        Raise `Unavailable` when the file cannot be opened and `FailedPrecondition` when the
        schema is not the one this release needs and migrating is switched off.
        """
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(
                f"cannot create the directory of the SQLite store {self.path} ({exc}); "
                "point RAG_DATA_DIR or RAG_STORE_URL at a writable place"
            ) from exc
        writer = await self._connect()
        try:
            reader = await self._connect()
        except BaseException:
            await writer.close()
            raise
        self._writer, self._reader = writer, reader
        try:
            if self._migrate:
                await self.write(_apply_migrations)
            else:
                await self.read(_check_schema)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close both connections once their running transactions end. Idempotent."""
        async with self._write_lock, self._read_lock:
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
        for conn in (writer, reader):
            if conn is not None:
                await conn.close()

    async def write(self, transaction: Transaction[T]) -> T:
        """Run `transaction` inside `BEGIN IMMEDIATE ... COMMIT`, retried if the lock stays busy.

        Exceptions raised by `transaction` roll it back and propagate unchanged; it may run more
        than once, so it must only touch the database. A cancelled caller gets `CancelledError`
        at once while the transaction still commits or rolls back on its own.
        """
        return await _uncancellable(self._run(self._write_lock, "writer", "BEGIN IMMEDIATE", transaction))

    async def read(self, transaction: Transaction[T]) -> T:
        """Run `transaction` on the read connection in one snapshot (a deferred transaction)."""
        return await _uncancellable(self._run(self._read_lock, "reader", "BEGIN", transaction))

    async def _run(self, lock: asyncio.Lock, which: str, begin: str, transaction: Transaction[T]) -> T:
        async with lock:
            conn = self._writer if which == "writer" else self._reader
            if conn is None:
                raise Unavailable(f"the SQLite store {self.path} is not open (or was closed); restart the service")
            for attempt in range(_LOCK_RETRIES + 1):
                try:
                    await conn.execute(begin)
                    try:
                        result = await transaction(conn)
                        await conn.execute("COMMIT")
                        return result
                    except BaseException:
                        await _rollback(conn)
                        raise
                except sqlite3.OperationalError as exc:
                    if is_lock_error(exc) and attempt < _LOCK_RETRIES:
                        # Jitter spreads out processes that collided on the lock.
                        delay = _RETRY_BASE_SECONDS * (2**attempt) * (1 + random.random())
                        log.info("sqlite busy, retrying", path=str(self.path), attempt=attempt + 1)
                        await asyncio.sleep(delay)
                        continue
                    raise self._unavailable(exc) from exc
                except sqlite3.DatabaseError as exc:
                    if isinstance(exc, sqlite3.IntegrityError):
                        raise
                    raise self._unavailable(exc) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def _unavailable(self, exc: sqlite3.Error) -> Unavailable:
        if isinstance(exc, sqlite3.OperationalError) and is_lock_error(exc):
            return Unavailable(
                f"the SQLite store {self.path} stayed locked by another process ({exc}); retry shortly, "
                "and if it persists look for a process holding a long transaction"
            )
        return Unavailable(
            f"the SQLite store {self.path} cannot answer ({exc}); check that the disk has space and "
            "the file is readable and writable, then retry"
        )

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(str(self.path), timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise Unavailable(
                f"cannot open the SQLite store {self.path} ({exc}); point RAG_DATA_DIR or RAG_STORE_URL "
                "at a writable file"
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            # NORMAL is safe in WAL mode: a crashed process loses nothing; only a power cut can
            # lose the last transactions. FULL would fsync every commit for no gain in dev use.
            await conn.execute("PRAGMA synchronous = NORMAL")
            await _set_wal(conn, self.path)
        except sqlite3.Error as exc:
            await conn.close()
            raise self._unavailable(exc) from exc
        except BaseException:
            await conn.close()
            raise
        return conn


async def _set_wal(conn: aiosqlite.Connection, path: Path) -> None:
    # Switching a fresh file to WAL needs a moment of exclusive access; two processes opening
    # the same new file at once can collide here, so retry like a write.
    for attempt in range(_LOCK_RETRIES + 1):
        try:
            row = await fetch_one(conn, "PRAGMA journal_mode = WAL")
            if row is None or str(row[0]).lower() != "wal":
                log.warning("sqlite file is not in WAL mode", path=str(path), mode=row[0] if row else None)
            return
        except sqlite3.OperationalError as exc:
            if not is_lock_error(exc) or attempt == _LOCK_RETRIES:
                raise
            await asyncio.sleep(_RETRY_BASE_SECONDS * (2**attempt))


async def _uncancellable(work: Coroutine[Any, Any, T]) -> T:
    # Cancelling a coroutine between BEGIN and COMMIT would leave the connection inside a
    # transaction (and holding the file's write lock); so the transaction runs as its own task,
    # and only the wait for it is cancelled.
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieve_exception)
    return await asyncio.shield(task)


def _retrieve_exception(task: asyncio.Future[Any]) -> None:
    # Marks the outcome as seen when the caller was cancelled and will never look at it.
    if not task.cancelled():
        task.exception()


async def _rollback(conn: aiosqlite.Connection) -> None:
    if conn.in_transaction:
        await conn.execute("ROLLBACK")


async def _schema_version(conn: aiosqlite.Connection) -> int:
    table = await fetch_one(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if table is None:
        return 0
    row = await fetch_one(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(row[0]) if row else 0


def _newer_schema(version: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"the SQLite store has schema version {version}, newer than this release knows "
        f"({LATEST_VERSION}); run a ragplatform release at least as new as the one that wrote it"
    )


async def _apply_migrations(conn: aiosqlite.Connection) -> None:
    # Runs under BEGIN IMMEDIATE: a second process opening at the same time waits for the lock,
    # then finds the versions applied and does nothing.
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    current = await _schema_version(conn)
    if current > LATEST_VERSION:
        raise _newer_schema(current)
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, now_us()),
        )
        log.info("sqlite schema migrated", version=migration.version, description=migration.description)


async def _check_schema(conn: aiosqlite.Connection) -> None:
    current = await _schema_version(conn)
    if current > LATEST_VERSION:
        raise _newer_schema(current)
    if current < LATEST_VERSION:
        raise FailedPrecondition(
            f"the SQLite store has schema version {current} but this release needs {LATEST_VERSION}, "
            "and RAG_STORE_MIGRATE is false; start once with RAG_STORE_MIGRATE=true to migrate it"
        )
