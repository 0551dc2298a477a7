"""Wiring: settings -> backends -> servicer -> `ServiceApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.store.factory import open_store
from ragplatform.conversation.service import ConversationService
from ragplatform.conversation.servicer import ConversationServicer
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import ConversationSettings
from ragplatform.domain.page_tokens import PageTokens, page_token_key
from ragplatform.v1 import conversation_pb2, conversation_pb2_grpc

SERVICE_NAME = conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name


def build_app(settings: ConversationSettings) -> ServiceApp:
    token = settings.internal_token.get_secret_value() if settings.internal_token else None

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            store = await open_store(settings)
            stack.push_async_callback(store.close)
            servicer = ConversationServicer(ConversationService(store, PageTokens(page_token_key(token))))

            def register(server: grpc.aio.Server) -> Sequence[str]:
                conversation_pb2_grpc.add_ConversationServiceServicer_to_server(servicer, server)
                return [SERVICE_NAME]

            yield Wiring(register)

    return ServiceApp(name="conversation", lifespan=lifespan)
