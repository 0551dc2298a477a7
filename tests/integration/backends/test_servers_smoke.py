"""The server fixtures start real processes that answer (a broken fixture fails here first)."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis

from tests.support.servers import PgBouncerServer, PostgresDatabase, RedisServer


async def test_postgres_answers_through_pgbouncer_in_transaction_mode(
    postgres_database: PostgresDatabase, pgbouncer_server: PgBouncerServer
) -> None:
    conn = await asyncpg.connect(postgres_database.bouncer_url, statement_cache_size=0)
    try:
        assert await conn.fetchval("SELECT current_database()") == postgres_database.name
        assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
    finally:
        await conn.close()
    assert "pool_mode = transaction" in pgbouncer_server.config.read_text()


async def test_redis_answers(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
