"""The gateway reads a follow-up's history and stores an Ask's exchange itself, through its own
store (SQLite, or PostgreSQL through PgBouncer as in production), without calling the
conversation service's GetHistory or AppendTurns: a new question starts a conversation titled by
it, a follow-up is rewritten from its history and adds to the same one, both turns (the answer
with its citations) are stored, and what the gateway wrote is what the conversation service
reads back."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from ragplatform.backends.store.api_keys import generate_api_key, hash_api_key
from ragplatform.backends.store.factory import open_store
from ragplatform.client import GatewayClient
from ragplatform.core.settings import StoreSettings, load_settings
from ragplatform.domain.models import Role
from ragplatform.v1 import common_pb2, gateway_pb2
from tests.integration.services.conftest import CORPUS, ServiceStarter, start_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUMP_MANUAL = CORPUS / "zephyr-9-pump-manual.md"
QUESTION = "What is the maximum pressure of the Zephyr-9 pump?"
FOLLOW_UP = "And its weight?"


def conversation_calls_served() -> float:
    """The conversation service's AppendTurns and GetHistory calls so far (the in-process services
    share the metrics registry)."""
    return sum(
        REGISTRY.get_sample_value(
            "ragplatform_grpc_server_handled_total",
            {"method": f"/ragplatform.v1.ConversationService/{method}", "code": "OK"},
        )
        or 0.0
        for method in ("AppendTurns", "GetHistory")
    )


def answer_of(messages: list[gateway_pb2.AskResponse]) -> str:
    return "".join(m.delta for m in messages if m.WhichOneof("event") == "delta")


async def wait_for_job(client: GatewayClient, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while (job := await client.get_job(job_id)).state != common_pb2.JOB_STATE_SUCCEEDED:
        assert job.state != common_pb2.JOB_STATE_FAILED, job.error
        assert time.monotonic() < deadline, f"job {job_id} did not finish within 30 s"
        await asyncio.sleep(0.05)


async def test_an_ask_stores_both_turns_of_a_new_and_a_follow_up_exchange(
    starter: ServiceStarter, store_url: str
) -> None:
    platform = await start_platform(starter, store_url=store_url)
    store = await open_store(load_settings(StoreSettings, data_dir=starter.data_dir, store_url=store_url))
    try:
        key = generate_api_key()
        await store.create_api_key("acme", "asker", hash_api_key(key))
        served_before = conversation_calls_served()
        async with GatewayClient(platform.gateway.address, key) as client:
            reply = await client.ingest_bytes(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
            await wait_for_job(client, reply.job.job_id)
            first = [m async for m in client.ask(QUESTION)]
            conversation_id = first[-1].done.conversation_id
            second = [m async for m in client.ask(FOLLOW_UP, conversation_id=conversation_id)]
            served_after_asks = conversation_calls_served()
            # what the gateway wrote, as the conversation service reads it back
            history = await client.get_conversation(conversation_id)

        assert conversation_id
        assert second[-1].done.conversation_id == conversation_id
        # the follow-up was rewritten from the history the gateway read: the first question's words
        assert "pump" in second[-1].done.search_query.lower()
        # read and stored by the gateway: no GetHistory or AppendTurns hop
        assert served_after_asks == served_before

        conversation = await store.get_conversation("acme", conversation_id)
        assert (conversation.title, conversation.turn_count) == (QUESTION, 4)
        turns = await store.get_turns("acme", conversation_id)
        assert [(t.role, t.content) for t in turns] == [
            (Role.USER, QUESTION),
            (Role.ASSISTANT, answer_of(first)),
            (Role.USER, FOLLOW_UP),
            (Role.ASSISTANT, answer_of(second)),
        ]
        cited = [c.filename for c in first[-1].done.citations]
        assert cited
        assert set(cited) == {PUMP_MANUAL.name}
        assert [c.filename for c in turns[1].citations] == cited
        assert [(c.quote, c.chunk_id) for c in turns[1].citations] == [
            (c.quote, c.chunk_id) for c in first[-1].done.citations
        ]
        assert [t.content for t in history.turns] == [t.content for t in turns]
        # another tenant's store view does not hold it
        assert [c.conversation_id for c in (await store.list_conversations("other", 10)).items] == []
    finally:
        await store.close()
