"""Wiring: settings -> embedder + vector store -> servicer -> `ServiceApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.backends.rerankers.factory import make_reranker
from ragplatform.backends.vectors.factory import open_vector_store
from ragplatform.core.server import ServiceApp, Wiring
from ragplatform.core.settings import RetrievalSettings
from ragplatform.domain.fusion import DEFAULT_SPARSE_WEIGHT
from ragplatform.domain.models import HybridFusion
from ragplatform.retrieval.service import RetrievalPolicy, RetrievalService
from ragplatform.retrieval.servicer import RetrievalServicer
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc


def retrieval_policy(settings: RetrievalSettings) -> RetrievalPolicy:
    """The search policy the settings describe."""
    return RetrievalPolicy(
        mode=settings.retrieval_mode,
        fusion=HybridFusion(
            method=settings.fusion,
            dense_weight=settings.fusion_dense_weight,
            sparse_weight=(
                settings.fusion_sparse_weight
                if settings.fusion_sparse_weight is not None
                else DEFAULT_SPARSE_WEIGHT[settings.fusion]
            ),
            rrf_k=settings.fusion_rrf_k,
            candidates=settings.fusion_candidates,
        ),
        rerank_candidates=settings.rerank_candidates,
        sparse_pair_weight=settings.sparse_pair_weight,
    )


SERVICE_NAME = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name


def build_app(settings: RetrievalSettings) -> ServiceApp:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Wiring]:
        async with AsyncExitStack() as stack:
            embedder = make_embedder(settings)
            stack.push_async_callback(embedder.close)
            # Load the model now, so the service reports SERVING only once it can answer quickly.
            await embedder.embed_query("warm up")
            vectors = open_vector_store(settings)
            await vectors.open(embedder.dimension, embedder.name)
            stack.push_async_callback(vectors.close)
            reranker = make_reranker(settings)
            if reranker is not None:
                stack.push_async_callback(reranker.close)
            policy = retrieval_policy(settings)
            service = RetrievalService(
                embedder, vectors, settings.max_top_k, policy, reranker, settings.query_vector_cache_size
            )
            servicer = RetrievalServicer(service)

            def register(server: grpc.aio.Server) -> Sequence[str]:
                retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
                return [SERVICE_NAME]

            yield Wiring(register)

    return ServiceApp(name="retrieval", lifespan=lifespan)
