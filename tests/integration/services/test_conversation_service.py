"""The conversation service through its generated stub, on the embedded SQLite store."""

from __future__ import annotations

import grpc
import pytest

from ragplatform.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


def stub(channel: grpc.aio.Channel) -> conversation_pb2_grpc.ConversationServiceStub:
    return conversation_pb2_grpc.ConversationServiceStub(channel)


def user(text: str) -> common_pb2.Turn:
    return common_pb2.Turn(role=common_pb2.ROLE_USER, content=text)


def assistant(text: str, *citations: common_pb2.Citation) -> common_pb2.Turn:
    return common_pb2.Turn(role=common_pb2.ROLE_ASSISTANT, content=text, citations=citations)


async def create(channel: grpc.aio.Channel, tenant: str, title: str = "Pump questions") -> common_pb2.Conversation:
    created: common_pb2.Conversation = await stub(channel).CreateConversation(
        conversation_pb2.CreateConversationRequest(tenant_id=tenant, title=title)
    )
    return created


async def append(
    channel: grpc.aio.Channel, tenant: str, conversation_id: str, *turns: common_pb2.Turn
) -> common_pb2.Conversation:
    updated: common_pb2.Conversation = await stub(channel).AppendTurns(
        conversation_pb2.AppendTurnsRequest(tenant_id=tenant, conversation_id=conversation_id, turns=turns)
    )
    return updated


async def history(
    channel: grpc.aio.Channel, tenant: str, conversation_id: str, max_turns: int = 0
) -> conversation_pb2.GetHistoryResponse:
    reply: conversation_pb2.GetHistoryResponse = await stub(channel).GetHistory(
        conversation_pb2.GetHistoryRequest(tenant_id=tenant, conversation_id=conversation_id, max_turns=max_turns)
    )
    return reply


async def test_create_then_append_then_history_keeps_order_and_citations(
    conversation_channel: grpc.aio.Channel, tenant: str
) -> None:
    created = await create(conversation_channel, tenant, "  What is   the pump's pressure?  ")
    assert created.conversation_id
    assert created.title == "What is the pump's pressure?"
    assert created.turn_count == 0
    citation = common_pb2.Citation(index=1, document_id="d1", filename="pump.md", chunk_id="c1", quote="42 bar")
    updated = await append(
        conversation_channel, tenant, created.conversation_id, user("Pressure?"), assistant("42 bar [1]", citation)
    )
    assert updated.turn_count == 2
    await append(conversation_channel, tenant, created.conversation_id, user("Weight?"), assistant("18 kg"))
    reply = await history(conversation_channel, tenant, created.conversation_id)
    assert reply.conversation.turn_count == 4
    assert [t.content for t in reply.turns] == ["Pressure?", "42 bar [1]", "Weight?", "18 kg"]
    assert [t.role for t in reply.turns] == [common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT] * 2
    assert [c.filename for c in reply.turns[1].citations] == ["pump.md"]
    assert reply.turns[1].citations[0].quote == "42 bar"
    assert reply.turns[0].created_at.seconds > 0


async def test_history_max_turns_returns_the_most_recent(conversation_channel: grpc.aio.Channel, tenant: str) -> None:
    conversation_id = (await create(conversation_channel, tenant)).conversation_id
    for i in range(5):
        await append(conversation_channel, tenant, conversation_id, user(f"q{i}"), assistant(f"a{i}"))
    recent = await history(conversation_channel, tenant, conversation_id, max_turns=3)
    assert [t.content for t in recent.turns] == ["a3", "q4", "a4"]
    assert recent.conversation.turn_count == 10
    everything = await history(conversation_channel, tenant, conversation_id, max_turns=0)
    assert len(everything.turns) == 10


async def test_a_long_title_is_shortened_and_an_empty_one_named(
    conversation_channel: grpc.aio.Channel, tenant: str
) -> None:
    long = await create(conversation_channel, tenant, "word " * 100)
    assert len(long.title) <= 120
    assert long.title.endswith("…")
    assert (await create(conversation_channel, tenant, "")).title == "Untitled"


async def test_list_pages_with_page_tokens(conversation_channel: grpc.aio.Channel, tenant: str) -> None:
    created = {(await create(conversation_channel, tenant, f"c{i}")).conversation_id for i in range(5)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await stub(conversation_channel).ListConversations(
            conversation_pb2.ListConversationsRequest(tenant_id=tenant, page_size=2, page_token=token)
        )
        assert len(reply.conversations) <= 2
        seen.extend(c.conversation_id for c in reply.conversations)
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created)


async def test_another_tenant_gets_not_found_and_an_empty_list(
    conversation_channel: grpc.aio.Channel, tenant: str
) -> None:
    other = tenant + "-b"
    conversation_id = (await create(conversation_channel, tenant)).conversation_id
    await append(conversation_channel, tenant, conversation_id, user("secret question"))
    for call in (
        history(conversation_channel, other, conversation_id),
        append(conversation_channel, other, conversation_id, user("intrusion")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub(conversation_channel).ListConversations(
        conversation_pb2.ListConversationsRequest(tenant_id=other)
    )
    assert list(listed.conversations) == []
    # the failed append added nothing
    assert [t.content for t in (await history(conversation_channel, tenant, conversation_id)).turns] == [
        "secret question"
    ]


async def test_an_unknown_conversation_is_not_found(conversation_channel: grpc.aio.Channel, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await history(conversation_channel, tenant, "no-such-conversation")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_invalid_requests_are_refused(conversation_channel: grpc.aio.Channel, tenant: str) -> None:
    conversation_id = (await create(conversation_channel, tenant)).conversation_id
    calls = [
        (append(conversation_channel, tenant, conversation_id), "turns must not be empty"),
        (history(conversation_channel, tenant, conversation_id, max_turns=-1), "max_turns"),
        (create(conversation_channel, ""), "tenant_id is required"),
        (append(conversation_channel, tenant, conversation_id, user("x" * 100_001)), "longer than"),
    ]
    for call, message in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (info.value.details() or "")


async def test_append_without_a_conversation_starts_one_holding_the_turns(
    conversation_channel: grpc.aio.Channel, tenant: str
) -> None:
    started: common_pb2.Conversation = await stub(conversation_channel).AppendTurns(
        conversation_pb2.AppendTurnsRequest(
            tenant_id=tenant, title="  What is\nthe pump's   pressure?  ", turns=[user("What is the pressure?")]
        )
    )
    assert started.conversation_id
    assert started.turn_count == 1
    assert started.title == "What is the pump's pressure?"  # shortened like CreateConversation's
    reply = await history(conversation_channel, tenant, started.conversation_id)
    assert [t.content for t in reply.turns] == ["What is the pressure?"]
