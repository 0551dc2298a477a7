"""A worker's chunk writes. Against an older retrieval service (a rolling upgrade that starts the
workers first): `UpsertDocumentsChunks` is unknown there (UNIMPLEMENTED), so every document goes
in its own `UpsertChunks`, and the batched call is used again once retrieval has it. Real gRPC on
loopback; the retrieval side is a generic handler that records what it receives. With a Qdrant
server (RAG_VECTOR_URL): the worker writes and trims there itself, and refuses at its start a
collection that another embedding model filled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.vectors.qdrant_server import QdrantServerStore
from ragplatform.core.settings import WorkerSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument
from ragplatform.domain.models import ChunkPoint, Document
from ragplatform.ingestion.chunk_writes import RetrievalChunkWriter, VectorStoreChunkWriter
from ragplatform.ingestion.worker_app import open_chunk_writer
from ragplatform.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.e2e.production.qdrant_double import QdrantRestDouble

SERVICE = "ragplatform.v1.RetrievalService"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.models: set[str] = set()  # embedding models named by the writes
        self.batched = False  # whether the "upgraded" retrieval answers UpsertDocumentsChunks

    async def upsert_chunks(self, request: retrieval_pb2.UpsertChunksRequest, context: Any) -> Any:
        if not request.chunks:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no chunks")
        self.calls.append(("UpsertChunks", [request.document_id]))
        self.models.add(request.embedding_model)
        return retrieval_pb2.UpsertChunksResponse(upserted=len(request.chunks))

    async def upsert_documents(self, request: retrieval_pb2.UpsertDocumentsChunksRequest, context: Any) -> Any:
        if not self.batched:  # an older retrieval: the method does not exist there
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.calls.append(("UpsertDocumentsChunks", [d.document_id for d in request.documents]))
        self.models.update(d.embedding_model for d in request.documents)
        return retrieval_pb2.UpsertChunksResponse(upserted=len(request.documents))


@asynccontextmanager
async def retrieval(recorder: Recorder) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    handlers = {
        "UpsertChunks": grpc.unary_unary_rpc_method_handler(
            recorder.upsert_chunks,
            request_deserializer=retrieval_pb2.UpsertChunksRequest.FromString,
            response_serializer=retrieval_pb2.UpsertChunksResponse.SerializeToString,
        ),
        "UpsertDocumentsChunks": grpc.unary_unary_rpc_method_handler(
            recorder.upsert_documents,
            request_deserializer=retrieval_pb2.UpsertDocumentsChunksRequest.FromString,
            response_serializer=retrieval_pb2.UpsertChunksResponse.SerializeToString,
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield retrieval_pb2_grpc.RetrievalServiceStub(channel)
    finally:
        await server.stop(grace=None)


def make_document(name: str) -> Document:
    now = datetime.now(UTC)
    return Document(
        document_id=name,
        tenant_id="t",
        filename=f"{name}.txt",
        content_type="text/plain",
        content_hash="h",
        size_bytes=1,
        blob_key=name,
        metadata={},
        chunk_count=1,
        created_at=now,
        updated_at=now,
    )


def document(name: str) -> tuple[Document, list[ChunkPoint]]:
    doc = make_document(name)
    point = ChunkPoint(
        tenant_id="t", document_id=name, filename=doc.filename, chunk_index=0, text="x", vector=[0.1, 0.2]
    )
    return doc, [point]


async def test_an_older_retrieval_gets_one_call_per_document_then_the_batched_call_once_upgraded() -> None:
    recorder = Recorder()
    async with retrieval(recorder) as stub:
        writer = RetrievalChunkWriter(stub, "m", retry_batched_seconds=0.0)
        await writer.write([document("a"), document("b")])
        assert recorder.calls == [("UpsertChunks", ["a"]), ("UpsertChunks", ["b"])]

        recorder.batched = True  # retrieval upgraded
        recorder.calls.clear()
        await writer.write([document("c"), document("d")])
        assert recorder.calls == [("UpsertDocumentsChunks", ["c", "d"])]
        assert recorder.models == {"m"}  # both paths name the model that made the vectors


async def test_the_older_path_is_remembered_and_other_errors_are_not_taken_for_it() -> None:
    recorder = Recorder()
    async with retrieval(recorder) as stub:
        writer = RetrievalChunkWriter(stub, "m", retry_batched_seconds=3600)
        await writer.write([document("a")])
        recorder.batched = True
        await writer.write([document("b")])  # still one by one until the retry time
        assert [name for name, _ in recorder.calls] == ["UpsertChunks", "UpsertChunks"]

        with pytest.raises(InvalidArgument):
            await writer.write([(make_document("e"), [])])


# --- a worker with RAG_VECTOR_URL writes to the Qdrant server itself ----------------------------


async def test_a_worker_with_a_qdrant_server_writes_and_trims_there_and_refuses_another_models_collection(
    tmp_path: Path,
) -> None:
    # Qdrant's REST API as the TEST DOUBLE serves it (tests/e2e/production/qdrant_double.py: no
    # Qdrant server binary installs here; its request models validate what the worker sends).
    double = QdrantRestDouble()
    await double.start()
    try:
        embedder = HashingEmbedder(8)
        settings = load_settings(
            WorkerSettings, data_dir=tmp_path, vector_url=double.url, vector_collection="chunks", embedder="hashing"
        )
        async with AsyncExitStack() as stack:
            # The retrieval address is closed: a write that went through retrieval would fail.
            writer = await open_chunk_writer(
                stack, settings.model_copy(update={"retrieval_addr": "127.0.0.1:9"}), None, embedder
            )
            assert isinstance(writer, VectorStoreChunkWriter)
            a, b = make_document("a"), make_document("b")
            vector = (await embedder.embed_documents(["x"]))[0]
            points = {
                name: [
                    ChunkPoint(
                        tenant_id="t",
                        document_id=name,
                        filename=f"{name}.txt",
                        chunk_index=i,
                        text=f"{name} {i}",
                        vector=vector,
                    )
                    for i in range(3)
                ]
                for name in ("a", "b")
            }
            before = double.requests
            await writer.write([(a, points["a"]), (b, points["b"])])
            assert double.requests - before == 1  # both documents in one request
            await writer.trim(a, 1)
            reader = QdrantServerStore(settings)
            stack.push_async_callback(reader.close)
            await reader.open(embedder.dimension)
            assert await reader.count("t") == 4  # a keeps chunk 0, b keeps 3
        # Another embedding model's worker may not write into this collection: refused at its start.
        with pytest.raises(FailedPrecondition, match="embedding model hashing-8"):
            async with AsyncExitStack() as stack:
                await open_chunk_writer(stack, settings, None, RenamedEmbedder(HashingEmbedder(8)))
    finally:
        await double.stop()


class RenamedEmbedder:
    """The hashing embedder under another model name (a worker configured with another model)."""

    def __init__(self, embedder: HashingEmbedder) -> None:
        self.name, self.dimension = "another-model", embedder.dimension
        self.embed_documents, self.embed_query = embedder.embed_documents, embedder.embed_query
        self.count_tokens, self.close = embedder.count_tokens, embedder.close


async def test_a_worker_without_a_qdrant_server_writes_through_retrieval(tmp_path: Path) -> None:
    settings = load_settings(WorkerSettings, data_dir=tmp_path, vector_url="")
    async with AsyncExitStack() as stack:
        writer = await open_chunk_writer(stack, settings, None, HashingEmbedder(8))
        assert isinstance(writer, RetrievalChunkWriter)
