"""Wiring of the gateway: store (API keys), cache/rate limiter, channels -> `ServiceApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.cache.factory import open_answer_cache, open_rate_limiter, open_token_budget
from ragplatform.backends.store.factory import open_store
from ragplatform.core.clients import open_channel
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import GatewaySettings
from ragplatform.gateway.ask import AskFlow, AskLimits
from ragplatform.gateway.auth import ApiKeyAuthenticator, ApiKeyInterceptor
from ragplatform.gateway.servicer import GatewayServicer
from ragplatform.v1 import (
    conversation_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    generation_pb2_grpc,
    ingestion_pb2_grpc,
    retrieval_pb2_grpc,
)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
# The call the admission pace is sized for (RAG_ADMISSION_PACE_SECONDS: an Ask's time); uploads and
# reads are short, and count only against RAG_MAX_IN_FLIGHT.
ASK_METHOD = f"/{SERVICE_NAME}/Ask"


def build_app(settings: GatewaySettings) -> ServiceApp:
    token = settings.internal_token.get_secret_value() if settings.internal_token else None

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            store = await open_store(settings)
            stack.push_async_callback(store.close)
            limiter = await open_rate_limiter(settings)
            stack.push_async_callback(limiter.close)
            cache = await open_answer_cache(settings)
            stack.push_async_callback(cache.close)
            budget = await open_token_budget(settings)
            stack.push_async_callback(budget.close)
            channels = {
                name: open_channel(address, token)
                for name, address in (
                    ("ingestion", settings.ingestion_addr),
                    ("retrieval", settings.retrieval_addr),
                    ("generation", settings.generation_addr),
                    ("conversation", settings.conversation_addr),
                )
            }
            for channel in channels.values():
                stack.push_async_callback(channel.close)
            retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channels["retrieval"])
            conversation = conversation_pb2_grpc.ConversationServiceStub(channels["conversation"])
            ask = AskFlow(
                retrieval=retrieval,
                generation=generation_pb2_grpc.GenerationServiceStub(channels["generation"]),
                store=store,
                cache=cache,
                budget=budget,
                limits=AskLimits(
                    default_top_k=settings.default_top_k,
                    max_top_k=settings.max_top_k,
                    max_question_chars=settings.max_question_chars,
                    history_turns=settings.max_history_turns,
                    cache_ttl_seconds=settings.answer_cache_ttl_seconds,
                    daily_token_budget=settings.tenant_daily_token_budget,
                ),
            )
            authenticator = ApiKeyAuthenticator(store)
            await stack.enter_async_context(
                authenticator.following_revocations(settings.api_key_revocation_poll_seconds)
            )
            auth = ApiKeyInterceptor(authenticator, limiter, settings.rate_limit_rps, settings.rate_limit_burst)
            servicer = GatewayServicer(
                ask,
                ingestion_pb2_grpc.IngestionServiceStub(channels["ingestion"]),
                retrieval,
                conversation,
                settings.default_top_k,
            )

            def register(server: grpc.aio.Server) -> Sequence[str]:
                gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
                return [SERVICE_NAME]

            yield Wiring(register, interceptors=[auth])

    return ServiceApp(
        name="gateway",
        lifespan=lifespan,
        internal=False,
        max_call_seconds=settings.ask_timeout_seconds,
        paced_methods=frozenset({ASK_METHOD}),
    )
