"""Wiring: settings -> answer generator and query rewriter -> servicer -> `ServiceApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.llms.factory import make_answer_generator, make_query_rewriter
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import GenerationSettings
from ragplatform.generation.service import GenerationService
from ragplatform.generation.servicer import GenerationServicer
from ragplatform.v1 import generation_pb2, generation_pb2_grpc

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name


def build_app(settings: GenerationSettings) -> ServiceApp:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            generator = make_answer_generator(settings)
            stack.push_async_callback(generator.close)
            rewriter = make_query_rewriter(settings)
            stack.push_async_callback(rewriter.close)
            servicer = GenerationServicer(
                GenerationService(generator, settings.llm_max_tokens, rewriter, settings.answer_delta_interval_seconds)
            )

            def register(server: grpc.aio.Server) -> Sequence[str]:
                generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
                return [SERVICE_NAME]

            yield Wiring(register)

    return ServiceApp(name="generation", lifespan=lifespan)
