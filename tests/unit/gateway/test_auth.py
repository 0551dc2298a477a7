"""API keys at the gateway: reading the key from call metadata, and authenticating it against
the real SQLite store (keys stored hashed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.base import Store
from ragplatform.backends.store.factory import open_store
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.domain.errors import Unauthenticated
from ragplatform.gateway.auth import ApiKeyAuthenticator, extract_api_key


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer rag_abc", "", "rag_abc"),
        ("bearer   rag_abc  ", "", "rag_abc"),
        ("BEARER rag_abc", "", "rag_abc"),
        ("", "  rag_xyz ", "rag_xyz"),
        ("", "", ""),
        ("Bearer ", "", ""),
        ("Basic dXNlcjpwdw==", "", ""),
        ("rag_abc", "", ""),  # a bare key is not a bearer token
        # an authorization header that is not a bearer token is an error, not a fallback
        ("Basic dXNlcjpwdw==", "rag_xyz", ""),
        ("Bearer rag_abc", "rag_xyz", "rag_abc"),
    ],
)
def test_extract_api_key(authorization: str, x_api_key: str, expected: str) -> None:
    assert extract_api_key(authorization, x_api_key) == expected


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(load_settings(StoreSettings, data_dir=tmp_path, store_url=""))
    try:
        yield opened
    finally:
        await opened.close()


async def new_key(store: Store, tenant: str) -> tuple[str, str]:
    key = generate_api_key()
    record = await store.create_api_key(tenant, f"key for {tenant}", hash_api_key(key))
    return key, record.key_id


async def test_a_valid_key_names_its_tenant(store: Store) -> None:
    key, key_id = await new_key(store, "acme")
    other, _ = await new_key(store, "globex")
    authenticator = ApiKeyAuthenticator(store)
    found = await authenticator.authenticate(key)
    assert (found.key_id, found.tenant_id) == (key_id, "acme")
    assert (await authenticator.authenticate(other)).tenant_id == "globex"


@pytest.mark.parametrize(("key", "message"), [("", "missing API key"), ("rag_unknown", "unknown API key")])
async def test_missing_and_unknown_keys_are_refused_with_how_to_get_one(store: Store, key: str, message: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        await ApiKeyAuthenticator(store).authenticate(key)
    assert message in info.value.message
    assert "ragplatform keys create --tenant" in info.value.message


async def test_a_revoked_key_is_refused_naming_it(store: Store) -> None:
    key, key_id = await new_key(store, "acme")
    await store.revoke_api_key(key_id)
    with pytest.raises(Unauthenticated) as info:
        await ApiKeyAuthenticator(store).authenticate(key)
    assert f"API key {key_id} was revoked" in info.value.message


async def test_a_revocation_takes_effect_once_the_lookup_cache_expires(store: Store) -> None:
    key, key_id = await new_key(store, "acme")
    cached = ApiKeyAuthenticator(store, cache_seconds=3600)
    uncached = ApiKeyAuthenticator(store, cache_seconds=0)
    await cached.authenticate(key)
    await uncached.authenticate(key)
    await store.revoke_api_key(key_id)
    # documented: a revoked key keeps working for up to the cache TTL on a gateway that saw it
    assert (await cached.authenticate(key)).tenant_id == "acme"
    with pytest.raises(Unauthenticated):
        await uncached.authenticate(key)


async def test_a_key_created_after_a_failed_lookup_works_once_the_cache_expires(store: Store) -> None:
    authenticator = ApiKeyAuthenticator(store, cache_seconds=0)
    key = generate_api_key()
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(key)
    await store.create_api_key("acme", "late", hash_api_key(key))
    assert (await authenticator.authenticate(key)).tenant_id == "acme"


async def test_a_revocation_drops_the_cache_at_the_next_check(store: Store) -> None:
    key, key_id = await new_key(store, "acme")
    other, _ = await new_key(store, "acme")
    authenticator = ApiKeyAuthenticator(store, cache_seconds=3600)
    assert not await authenticator.check_revocations()  # the first check only records the revision
    await authenticator.authenticate(key)
    await authenticator.authenticate(other)
    await store.revoke_api_key(key_id)
    assert await authenticator.check_revocations()
    with pytest.raises(Unauthenticated, match="was revoked"):
        await authenticator.authenticate(key)
    assert (await authenticator.authenticate(other)).tenant_id == "acme"
    assert not await authenticator.check_revocations()
