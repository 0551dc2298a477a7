"""API-key revocation reaches every gateway within a second: two gateways sharing one store (the
SQLite file, or PostgreSQL through PgBouncer), both with the key cached, stop accepting it within
RAG_API_KEY_REVOCATION_POLL_SECONDS of the revocation (the lookup cache lives 30 s)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.v1 import gateway_pb2, gateway_pb2_grpc
from tests.integration.services.conftest import ServiceStarter

pytestmark = pytest.mark.asyncio(loop_scope="module")

REVOCATION_BUDGET_SECONDS = 1.0


async def accepted(stub: gateway_pb2_grpc.GatewayServiceStub, key: str) -> bool:
    try:
        await stub.ListConversations(
            gateway_pb2.GatewayListConversationsRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=5
        )
    except grpc.aio.AioRpcError as exc:
        refusal = (exc.code(), "was revoked" in (exc.details() or ""))
        if refusal != (grpc.StatusCode.UNAUTHENTICATED, True):
            raise AssertionError(f"unexpected failure: {exc.code()} {exc.details()}") from None
        return False
    return True


async def test_a_revoked_key_stops_working_on_every_gateway_within_a_second(
    starter: ServiceStarter, store_url: str
) -> None:
    conversation = await starter.start("conversation", store_url=store_url)
    settings = load_settings(StoreSettings, data_dir=starter.data_dir, store_url=store_url)
    store = await open_store(settings)
    first = await starter.start("gateway", store_url=store_url, conversation_addr=conversation.address)
    second = await starter.start("gateway", store_url=store_url, conversation_addr=conversation.address)
    # ServiceStarter files services by name: keep both, so both are stopped at the end.
    starter.running["gateway"], starter.running["gateway-2"] = first, second
    gateways = [first, second]
    channels = [grpc.aio.insecure_channel(g.address) for g in gateways]
    try:
        key = generate_api_key()
        record = await store.create_api_key("acme", "to revoke", hash_api_key(key))
        stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
        for stub in stubs:  # both gateways now hold the key in their 30 s cache
            assert await accepted(stub, key)

        await store.revoke_api_key(record.key_id)
        revoked_at = time.monotonic()
        refused_after = []
        for stub in stubs:
            while await accepted(stub, key):
                assert time.monotonic() - revoked_at < 5, "the revocation did not reach this gateway"
                await asyncio.sleep(0.02)
            refused_after.append(time.monotonic() - revoked_at)
        assert max(refused_after) <= REVOCATION_BUDGET_SECONDS, refused_after
    finally:
        for channel in channels:
            await channel.close()
        await store.close()
