"""The embedded SQLite store: the shared store contract, plus the file, schema and
multi-process behaviour only this adapter has."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.store.factory import open_store
from ragplatform.backends.store.sqlite import SqliteStore
from ragplatform.backends.store.sqlite_database import sqlite_path
from ragplatform.backends.store.sqlite_schema import LATEST_VERSION
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, Unavailable
from ragplatform.domain.models import JobState, Role, Turn
from tests.support.store_contract import StoreContract, new_tenant, upload

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(tmp_path: Path) -> StoreSettings:
    return load_settings(StoreSettings, data_dir=tmp_path)


@pytest.fixture
async def store(settings: StoreSettings) -> AsyncIterator[SqliteStore]:
    opened = await open_store(settings)
    assert isinstance(opened, SqliteStore)
    yield opened
    await opened.close()


class TestSqliteStoreContract(StoreContract):
    pass


# --- where the file is -------------------------------------------------------------------------
def test_the_file_defaults_to_the_data_dir(tmp_path: Path) -> None:
    assert sqlite_path(load_settings(StoreSettings, data_dir=tmp_path)) == tmp_path / "ragplatform.db"
    assert (
        sqlite_path(load_settings(StoreSettings, data_dir=tmp_path, store_url="sqlite://"))
        == tmp_path / "ragplatform.db"
    )


def test_a_sqlite_url_names_the_file() -> None:
    assert sqlite_path(load_settings(StoreSettings, store_url="sqlite:///data/rag.db")) == Path("data/rag.db")
    assert sqlite_path(load_settings(StoreSettings, store_url="sqlite:////var/lib/rag.db")) == Path("/var/lib/rag.db")


def test_an_in_memory_database_is_refused_with_a_reason() -> None:
    with pytest.raises(FailedPrecondition, match="needs a file"):
        sqlite_path(load_settings(StoreSettings, store_url="sqlite:///:memory:"))


async def test_an_unwritable_location_is_unavailable_with_a_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(Unavailable, match="RAG_DATA_DIR"):
        await open_store(load_settings(StoreSettings, data_dir=blocker / "data"))


async def test_a_closed_store_is_unavailable(store: SqliteStore) -> None:
    await store.close()
    with pytest.raises(Unavailable, match="not open"):
        await store.ping()


async def test_data_survives_closing_and_reopening(settings: StoreSettings) -> None:
    tenant = new_tenant()
    first = await open_store(settings)
    outcome = await first.record_upload(upload(tenant))
    await first.close()

    second = await open_store(settings)
    try:
        assert (await second.get_document(tenant, outcome.document.document_id)).filename == "guide.md"
    finally:
        await second.close()


# --- schema ----------------------------------------------------------------------------------
def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


async def test_migrations_apply_once_however_often_the_store_opens(settings: StoreSettings) -> None:
    stores = await asyncio.gather(*(open_store(settings) for _ in range(4)))
    for store in stores:
        await store.close()
    again = await open_store(settings)
    await again.close()
    assert _versions(sqlite_path(settings)) == list(range(1, LATEST_VERSION + 1))


async def test_without_migrating_a_fresh_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="RAG_STORE_MIGRATE=true"):
        await open_store(load_settings(StoreSettings, data_dir=tmp_path, store_migrate=False))


async def test_without_migrating_a_current_file_opens(settings: StoreSettings) -> None:
    await (await open_store(settings)).close()
    store = await open_store(settings.model_copy(update={"store_migrate": False}))
    try:
        await store.ping()
    finally:
        await store.close()


async def test_a_file_from_a_newer_release_is_refused(settings: StoreSettings) -> None:
    await (await open_store(settings)).close()
    with sqlite3.connect(sqlite_path(settings)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST_VERSION + 1,))
    with pytest.raises(FailedPrecondition, match="newer than this release"):
        await open_store(settings)


async def test_the_file_uses_write_ahead_logging(store: SqliteStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- behaviour beyond the contract ------------------------------------------------------------
async def test_starting_a_finished_job_returns_it_unchanged(store: SqliteStore) -> None:
    outcome = await store.record_upload(upload(new_tenant()))
    await store.start_job(outcome.job.job_id)
    done = await store.succeed_job(outcome.job.job_id, 2)

    redelivered = await store.start_job(outcome.job.job_id)

    assert redelivered.state == JobState.SUCCEEDED
    assert redelivered.attempts == done.attempts


async def test_a_late_older_job_does_not_overwrite_the_chunk_count(store: SqliteStore) -> None:
    tenant = new_tenant()
    old = await store.record_upload(upload(tenant, "guide.md", "v1"))
    new = await store.record_upload(upload(tenant, "guide.md", "v2"))
    await store.start_job(new.job.job_id)
    await store.succeed_job(new.job.job_id, 7)

    await store.start_job(old.job.job_id)
    await store.succeed_job(old.job.job_id, 3)

    assert (await store.get_document(tenant, new.document.document_id)).chunk_count == 7


# --- several processes on one file -------------------------------------------------------------
_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from ragplatform.backends.store.factory import open_store
    from ragplatform.core.settings import StoreSettings, load_settings
    from tests.support.store_contract import upload

    async def main(data_dir: str, tenant: str, prefix: str) -> None:
        store = await open_store(load_settings(StoreSettings, data_dir=Path(data_dir)))
        try:
            for i in range(40):
                await store.record_upload(upload(tenant, f"{prefix}-{i}.md", f"{prefix}-{i}"))
        finally:
            await store.close()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_processes_opening_and_writing_one_fresh_file_at_once_lose_nothing(tmp_path: Path) -> None:
    tenant = new_tenant()
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            str(tmp_path),
            tenant,
            f"p{i}",
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(3)
    ]
    for writer in writers:
        _, stderr = await asyncio.wait_for(writer.communicate(), 90)
        assert writer.returncode == 0, stderr.decode()

    store = await open_store(load_settings(StoreSettings, data_dir=tmp_path))
    try:
        page = await store.list_documents(tenant, 500)
        assert len(page.items) == 120
        assert await store.count_jobs(JobState.QUEUED) == 120
        assert _versions(sqlite_path(load_settings(StoreSettings, data_dir=tmp_path))) == list(
            range(1, LATEST_VERSION + 1)
        )
    finally:
        await store.close()


async def test_cancelled_callers_leave_no_transaction_half_done(store: SqliteStore) -> None:
    tenant = new_tenant()
    conversation = await store.create_conversation(tenant, "c")
    tasks = [
        asyncio.create_task(store.append_turns(tenant, conversation.conversation_id, [Turn(Role.USER, f"q{i}")]))
        for i in range(20)
    ]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # The store still takes writes, and the turn count agrees with the stored turns.
    await store.append_turns(tenant, conversation.conversation_id, [Turn(Role.USER, "after")])
    turns = await store.get_turns(tenant, conversation.conversation_id)
    assert turns[-1].content == "after"
    assert (await store.get_conversation(tenant, conversation.conversation_id)).turn_count == len(turns)
