"""Choose the relational store from settings: PostgreSQL for postgresql:// URLs, else SQLite."""

from __future__ import annotations

import importlib

from ragplatform.backends.store.base import Store
from ragplatform.backends.store.sqlite import SqliteStore
from ragplatform.core.settings import StoreSettings


async def open_store(settings: StoreSettings) -> Store:
    """An opened store (schema migrated when RAG_STORE_MIGRATE is true); the caller closes it.

    Empty RAG_STORE_URL or `sqlite://...`: the embedded SQLite file. `postgresql://` or
    `postgres://`: PostgreSQL, imported only then so the embedded setup never loads asyncpg.
    """
    store: Store
    if not settings.store_url or settings.store_url.startswith("sqlite://"):
        store = SqliteStore(settings)
    else:
        module = importlib.import_module("ragplatform.backends.store.postgres")
        store = module.PostgresStore(settings)
    await store.open()
    return store
