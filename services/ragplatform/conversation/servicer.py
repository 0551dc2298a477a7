"""gRPC face of the conversation service: proto <-> domain only."""

from __future__ import annotations

from typing import Any

from ragplatform.conversation.service import ConversationService
from ragplatform.core.convert import conversation_to_proto, turn_from_proto, turn_to_proto
from ragplatform.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, service: ConversationService) -> None:
        self._service = service

    async def CreateConversation(
        self, request: conversation_pb2.CreateConversationRequest, context: Any
    ) -> common_pb2.Conversation:
        return conversation_to_proto(await self._service.create(request.tenant_id, request.title))

    async def AppendTurns(self, request: conversation_pb2.AppendTurnsRequest, context: Any) -> common_pb2.Conversation:
        turns = [turn_from_proto(t) for t in request.turns]
        return conversation_to_proto(
            await self._service.append(request.tenant_id, request.conversation_id, turns, request.title)
        )

    async def GetHistory(
        self, request: conversation_pb2.GetHistoryRequest, context: Any
    ) -> conversation_pb2.GetHistoryResponse:
        conversation, turns = await self._service.history(request.tenant_id, request.conversation_id, request.max_turns)
        return conversation_pb2.GetHistoryResponse(
            conversation=conversation_to_proto(conversation), turns=[turn_to_proto(t) for t in turns]
        )

    async def ListConversations(
        self, request: conversation_pb2.ListConversationsRequest, context: Any
    ) -> conversation_pb2.ListConversationsResponse:
        page = await self._service.list(request.tenant_id, request.page_size, request.page_token)
        return conversation_pb2.ListConversationsResponse(
            conversations=[conversation_to_proto(c) for c in page.items], next_page_token=page.next_cursor
        )
