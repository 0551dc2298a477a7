"""PostgresStore against a real PostgreSQL 15, THROUGH PgBouncer in transaction pooling mode
(the production shape): the shared store contract, migrations, and pool behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ragplatform.backends.store.postgres import PostgresStore, migrate
from ragplatform.backends.store.postgres_migrations import latest_version, load_migrations
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, ResourceExhausted, Unavailable
from ragplatform.domain.models import JobState
from tests.support.servers import PgBouncerServer, PostgresDatabase
from tests.support.store_contract import StoreContract, new_tenant, upload


def settings_for(url: str, **overrides: object) -> StoreSettings:
    fields: dict[str, object] = {"store_pool_min": 1, "store_pool_max": 5, "store_timeout_seconds": 5.0}
    return load_settings(StoreSettings, store_url=url, **{**fields, **overrides})


@pytest.fixture
async def store(module_postgres_database: PostgresDatabase) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(settings_for(module_postgres_database.bouncer_url))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class TestPostgresStoreContract(StoreContract):
    """Every behaviour the SQLite store has, on PostgreSQL through PgBouncer."""


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def test_migrations_apply_once_even_when_many_replicas_start_together(
    postgres_database: PostgresDatabase,
) -> None:
    settings = settings_for(postgres_database.bouncer_url)
    stores = [PostgresStore(settings) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(postgres_database.direct_url)
        try:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        finally:
            await conn.close()
        assert versions == [m.version for m in load_migrations()]
        assert {"documents", "jobs", "conversations", "turns", "api_keys", "corpus_versions"} <= await _tables(
            postgres_database.direct_url
        )
        assert await migrate(settings) == []  # already up to date: nothing to do
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migrate_command_applies_pending_versions(postgres_database: PostgresDatabase) -> None:
    applied = await migrate(settings_for(postgres_database.bouncer_url))
    assert applied == [m.version for m in load_migrations()]
    assert applied[-1] == latest_version()


async def test_without_migrate_an_unmigrated_database_is_refused_with_the_command_to_run(
    postgres_database: PostgresDatabase,
) -> None:
    store = PostgresStore(settings_for(postgres_database.bouncer_url, store_migrate=False))
    with pytest.raises(FailedPrecondition, match="ragplatform migrate"):
        await store.open()
    assert "documents" not in await _tables(postgres_database.direct_url)


async def test_a_database_newer_than_this_release_is_refused(postgres_database: PostgresDatabase) -> None:
    await migrate(settings_for(postgres_database.bouncer_url))
    conn = await asyncpg.connect(postgres_database.direct_url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    finally:
        await conn.close()
    store = PostgresStore(settings_for(postgres_database.bouncer_url))
    with pytest.raises(FailedPrecondition, match="newer than this release"):
        await store.open()


async def test_every_query_path_uses_an_index(module_postgres_database: PostgresDatabase) -> None:
    """With sequential scans priced out, the planner still finds an index for each listing
    (a missing index would leave a Seq Scan in the plan)."""
    store = PostgresStore(settings_for(module_postgres_database.bouncer_url))
    await store.open()
    await store.close()
    queries = [
        "SELECT * FROM documents WHERE tenant_id = 't' AND content_hash = 'h'",
        "SELECT * FROM documents WHERE tenant_id = 't' ORDER BY created_at DESC, document_id DESC LIMIT 5",
        "SELECT * FROM jobs WHERE tenant_id = 't' ORDER BY created_at DESC, job_id DESC LIMIT 5",
        "SELECT * FROM jobs WHERE tenant_id = 't' AND state = 'QUEUED' ORDER BY created_at DESC, job_id DESC LIMIT 5",
        "SELECT COUNT(*) FROM jobs WHERE state = 'QUEUED'",
        "SELECT * FROM jobs WHERE document_id = 'd'",
        "SELECT * FROM conversations WHERE tenant_id = 't' ORDER BY created_at DESC, conversation_id DESC LIMIT 5",
        "SELECT * FROM turns WHERE conversation_id = 'c' ORDER BY seq DESC LIMIT 5",
        "SELECT * FROM api_keys WHERE key_hash = 'h'",
        "SELECT * FROM api_keys WHERE tenant_id = 't' ORDER BY created_at, key_id",
    ]
    conn = await asyncpg.connect(module_postgres_database.direct_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        for query in queries:
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query))
            assert "Seq Scan" not in plan, f"{query}\n{plan}"
    finally:
        await conn.close()


async def test_concurrent_uploads_of_one_file_make_one_document(store: PostgresStore) -> None:
    tenant = new_tenant()
    outcomes = await asyncio.gather(*(store.record_upload(upload(tenant, "same.md", "same")) for _ in range(8)))
    assert len({o.document.document_id for o in outcomes}) == 1
    assert sum(not o.deduplicated for o in outcomes) == 1


async def test_concurrent_uploads_of_one_content_under_other_names_make_one_document(store: PostgresStore) -> None:
    tenant = new_tenant()
    outcomes = await asyncio.gather(*(store.record_upload(upload(tenant, f"copy-{i}.md", "same")) for i in range(8)))
    assert len({o.document.document_id for o in outcomes}) == 1
    assert sum(not o.deduplicated for o in outcomes) == 1


async def test_concurrent_versions_of_one_name_keep_one_document_pointing_at_a_queued_job(
    store: PostgresStore,
) -> None:
    tenant = new_tenant()
    outcomes = await asyncio.gather(*(store.record_upload(upload(tenant, "same.md", f"v{i}")) for i in range(8)))
    assert len({o.document.document_id for o in outcomes}) == 1
    assert not any(o.deduplicated for o in outcomes)
    document = await store.get_document(tenant, outcomes[0].document.document_id)
    assert document.latest_job_id in {o.job.job_id for o in outcomes}
    assert len((await store.list_jobs(tenant, JobState.QUEUED, 20)).items) == 8


async def test_an_upload_waits_only_for_uploads_of_the_same_content(
    store: PostgresStore, module_postgres_database: PostgresDatabase
) -> None:
    """A tenant's uploaders do not queue behind each other: with one content's upload lock held
    by another transaction, an upload of other content goes through at once."""
    tenant = new_tenant()
    blocker = await asyncpg.connect(module_postgres_database.direct_url)
    try:
        async with blocker.transaction():
            await blocker.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"upload:{tenant}:sha256-held"
            )
            other = await asyncio.wait_for(store.record_upload(upload(tenant, "other.md", "other")), 5.0)
            assert not other.deduplicated
            held = asyncio.create_task(store.record_upload(upload(tenant, "held.md", "held")))
            await asyncio.sleep(0.5)
            assert not held.done()  # the same content waits for the transaction holding its lock
        assert not (await asyncio.wait_for(held, 5.0)).deduplicated
    finally:
        await blocker.close()


async def test_the_pool_never_exceeds_its_maximum(module_postgres_database: PostgresDatabase) -> None:
    store = PostgresStore(settings_for(module_postgres_database.bouncer_url, store_pool_max=2))
    await store.open()
    try:
        tenant = new_tenant()
        await asyncio.gather(*(store.create_conversation(tenant, f"c{i}") for i in range(20)))
        assert len((await store.list_conversations(tenant, 50)).items) == 20
        assert store._pool is not None
        assert store._pool.get_size() <= 2
    finally:
        await store.close()


async def test_a_call_that_finds_every_connection_busy_is_refused_with_a_retry_hint(
    module_postgres_database: PostgresDatabase,
) -> None:
    # Capacity, not an outage: 500 uploaders against one ingestion process's pool of 10 must be
    # told to come back (RESOURCE_EXHAUSTED + hint), not that PostgreSQL is down (UNAVAILABLE).
    store = PostgresStore(
        settings_for(module_postgres_database.bouncer_url, store_pool_max=1, store_timeout_seconds=0.3)
    )
    await store.open()
    try:
        tenant = new_tenant()
        async with store._connection():  # the pool's only connection, lent out
            with pytest.raises(ResourceExhausted, match="RAG_STORE_POOL_MAX=1") as refused:
                await store.create_conversation(tenant, "waits")
        assert refused.value.retry_after_seconds is not None
        assert refused.value.retry_after_seconds > 0
        await store.create_conversation(tenant, "served once the connection is back")
    finally:
        await store.close()


async def test_an_unreachable_database_is_unavailable_with_what_to_check() -> None:
    from tests.support.servers import free_port

    store = PostgresStore(settings_for(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"))
    with pytest.raises(Unavailable, match="RAG_STORE_URL"):
        await store.open()


async def test_the_factory_opens_postgres_for_a_postgresql_url(module_postgres_database: PostgresDatabase) -> None:
    from ragplatform.backends.store.factory import open_store

    store = await open_store(settings_for(module_postgres_database.bouncer_url.replace("postgresql://", "postgres://")))
    try:
        assert isinstance(store, PostgresStore)
        await store.ping()
    finally:
        await store.close()


async def test_ragplatform_migrate_migrates_the_database_named_by_the_environment(
    postgres_database: PostgresDatabase,
) -> None:
    """The command an operator's Job (or an SRE) runs, configured only through RAG_ variables."""
    import os
    import sys

    env = {**os.environ, "RAG_STORE_URL": postgres_database.bouncer_url, "RAG_STORE_PASSWORD": "unused-with-trust"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ragplatform",
        "migrate",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert "documents" in await _tables(postgres_database.direct_url)
    assert await migrate(settings_for(postgres_database.bouncer_url)) == []


async def test_a_store_call_is_one_statement_at_the_bouncer(
    store: PostgresStore, pgbouncer_server: PgBouncerServer
) -> None:
    """Releasing a pooled connection sends nothing: the store keeps no session state, so asyncpg's
    reset query (RESET ALL, UNLISTEN *, ...) would be one more round trip per call for nothing."""
    tenant = new_tenant()
    conversation = await store.create_conversation(tenant, "counted")
    before = pgbouncer_server.total_query_count()
    for _ in range(5):
        await store.get_conversation(tenant, conversation.conversation_id)
    assert pgbouncer_server.total_query_count() - before == 5
