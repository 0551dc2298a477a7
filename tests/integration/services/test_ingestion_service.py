"""The ingestion service through its generated stub, with a real retrieval service behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.v1 import common_pb2, ingestion_pb2, ingestion_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc
from tests.integration.services.conftest import CORPUS, INVALID, UPLOAD_LIMIT, ServiceStarter, upload_messages

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT = b"The Zephyr-9 pump delivers 42 bar at most. Its impeller is made of bronze.\n"


def stub(channel: grpc.aio.Channel) -> ingestion_pb2_grpc.IngestionServiceStub:
    return ingestion_pb2_grpc.IngestionServiceStub(channel)


async def upload(
    channel: grpc.aio.Channel, tenant: str, filename: str, data: bytes, **labels: str
) -> ingestion_pb2.UploadResponse:
    reply: ingestion_pb2.UploadResponse = await stub(channel).Upload(
        iter(upload_messages(tenant, filename, data, labels))
    )
    return reply


async def refused(channel: grpc.aio.Channel, messages: list[ingestion_pb2.UploadRequest]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(channel).Upload(iter(messages))
    return info.value


async def document_names(channel: grpc.aio.Channel, tenant: str) -> list[str]:
    reply = await stub(channel).ListDocuments(ingestion_pb2.ListDocumentsRequest(tenant_id=tenant))
    return sorted(d.filename for d in reply.documents)


async def test_an_upload_is_recorded_with_a_queued_job(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    reply = await upload(ingestion_channel, tenant, "zephyr.md", TEXT, team="pumps")
    assert reply.deduplicated is False
    assert reply.document.filename == "zephyr.md"
    assert reply.document.content_type == "text/markdown"
    assert reply.document.size_bytes == len(TEXT)
    assert dict(reply.document.metadata) == {"team": "pumps"}
    assert reply.job.state == common_pb2.JOB_STATE_QUEUED
    job = await stub(ingestion_channel).GetJob(ingestion_pb2.GetJobRequest(tenant_id=tenant, job_id=reply.job.job_id))
    assert job.document_id == reply.document.document_id
    assert job.state == common_pb2.JOB_STATE_QUEUED


async def test_an_upload_must_start_with_metadata(ingestion_channel: grpc.aio.Channel) -> None:
    error = await refused(ingestion_channel, [ingestion_pb2.UploadRequest(chunk=TEXT)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must start with a metadata message" in (error.details() or "")


async def test_metadata_may_only_come_first(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    messages = upload_messages(tenant, "a.txt", TEXT)
    error = await refused(ingestion_channel, [*messages, messages[0]])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only be sent once" in (error.details() or "")
    assert await document_names(ingestion_channel, tenant) == []


async def test_an_empty_file_is_refused(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    data = (INVALID / "empty.txt").read_bytes()
    error = await refused(ingestion_channel, upload_messages(tenant, "empty.txt", data))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty.txt is empty" in (error.details() or "")
    assert await document_names(ingestion_channel, tenant) == []


async def test_an_unsupported_type_is_refused_naming_what_is_accepted(
    ingestion_channel: grpc.aio.Channel, tenant: str
) -> None:
    # a legacy binary Word file (OLE header): only the Office Open XML formats are read
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600
    error = await refused(ingestion_channel, upload_messages(tenant, "minutes.doc", data))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert "unsupported file type" in details
    assert "PDF" in details
    assert await document_names(ingestion_channel, tenant) == []


async def test_a_file_above_the_limit_is_refused_naming_the_variable(
    ingestion_channel: grpc.aio.Channel, tenant: str
) -> None:
    error = await refused(ingestion_channel, upload_messages(tenant, "big.txt", b"x" * (UPLOAD_LIMIT + 1)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RAG_MAX_UPLOAD_BYTES" in (error.details() or "")
    assert await document_names(ingestion_channel, tenant) == []
    # exactly at the limit is accepted
    reply = await upload(ingestion_channel, tenant, "limit.txt", b"y" * UPLOAD_LIMIT)
    assert reply.document.size_bytes == UPLOAD_LIMIT


@pytest.mark.parametrize("filename", ["docs/a.txt", "..\\a.txt", "   "])
async def test_a_filename_that_is_not_a_plain_name_is_refused(
    ingestion_channel: grpc.aio.Channel, tenant: str, filename: str
) -> None:
    error = await refused(ingestion_channel, upload_messages(tenant, filename, TEXT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filename" in (error.details() or "")
    assert await document_names(ingestion_channel, tenant) == []


async def test_identical_content_is_deduplicated_to_the_same_job(
    ingestion_channel: grpc.aio.Channel, tenant: str
) -> None:
    first = await upload(ingestion_channel, tenant, "a.txt", TEXT)
    again = await upload(ingestion_channel, tenant, "a.txt", TEXT)
    assert again.deduplicated is True
    assert again.job.job_id == first.job.job_id
    assert again.document.document_id == first.document.document_id
    jobs = await stub(ingestion_channel).ListJobs(ingestion_pb2.ListJobsRequest(tenant_id=tenant))
    assert [j.job_id for j in jobs.jobs] == [first.job.job_id]


async def test_changed_content_under_the_same_name_keeps_the_document_with_a_new_job(
    ingestion_channel: grpc.aio.Channel, tenant: str
) -> None:
    first = await upload(ingestion_channel, tenant, "a.txt", TEXT)
    changed = await upload(ingestion_channel, tenant, "a.txt", TEXT + b"A second version adds this line.\n")
    assert changed.deduplicated is False
    assert changed.document.document_id == first.document.document_id
    assert changed.job.job_id != first.job.job_id
    assert changed.document.latest_job_id == changed.job.job_id
    assert changed.document.content_hash != first.document.content_hash
    assert await document_names(ingestion_channel, tenant) == ["a.txt"]


async def test_listings_page_with_page_tokens(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    uploaded = sorted(f"doc-{i}.txt" for i in range(5))
    for name in uploaded:
        await upload(ingestion_channel, tenant, name, f"document {name}".encode())
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await stub(ingestion_channel).ListDocuments(
            ingestion_pb2.ListDocumentsRequest(tenant_id=tenant, page_size=2, page_token=token)
        )
        assert len(reply.documents) <= 2
        seen.extend(d.filename for d in reply.documents)
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == uploaded  # each exactly once
    job_ids: list[str] = []
    token = ""
    while True:
        jobs = await stub(ingestion_channel).ListJobs(
            ingestion_pb2.ListJobsRequest(
                tenant_id=tenant, state=common_pb2.JOB_STATE_QUEUED, page_size=3, page_token=token
            )
        )
        job_ids.extend(j.job_id for j in jobs.jobs)
        token = jobs.next_page_token
        if not token:
            break
    assert len(set(job_ids)) == len(job_ids) == 5
    succeeded = await stub(ingestion_channel).ListJobs(
        ingestion_pb2.ListJobsRequest(tenant_id=tenant, state=common_pb2.JOB_STATE_SUCCEEDED)
    )
    assert list(succeeded.jobs) == []


async def test_another_tenant_sees_nothing_and_gets_not_found(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    other = tenant + "-other"
    mine = await upload(ingestion_channel, tenant, "a.txt", TEXT)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(ingestion_channel).GetJob(ingestion_pb2.GetJobRequest(tenant_id=other, job_id=mine.job.job_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(ingestion_channel).DeleteDocument(
            ingestion_pb2.DeleteDocumentRequest(tenant_id=other, document_id=mine.document.document_id)
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert await document_names(ingestion_channel, other) == []
    # the same bytes from another tenant are that tenant's own document, not a duplicate
    theirs = await upload(ingestion_channel, other, "a.txt", TEXT)
    assert theirs.deduplicated is False
    assert theirs.document.document_id != mine.document.document_id
    assert await document_names(ingestion_channel, tenant) == ["a.txt"]


async def test_requests_without_a_tenant_are_refused(ingestion_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(ingestion_channel).ListDocuments(ingestion_pb2.ListDocumentsRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id is required" in (info.value.details() or "")


async def index_chunks(channel: grpc.aio.Channel, document: common_pb2.Document, texts: list[str]) -> None:
    """Index chunks for a document as a worker does (same embedder as the retrieval service)."""
    vectors = await HashingEmbedder(384).embed_documents(texts)
    await retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertChunks(
        retrieval_pb2.UpsertChunksRequest(
            tenant_id=document.tenant_id,
            document_id=document.document_id,
            filename=document.filename,
            chunks=[
                retrieval_pb2.IndexedChunk(chunk_index=i, text=t, vector=v)
                for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
            ],
        )
    )


async def searched_documents(channel: grpc.aio.Channel, tenant: str, query: str) -> set[str]:
    reply = await retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(
        retrieval_pb2.SearchRequest(tenant_id=tenant, query=query, top_k=10)
    )
    return {p.document_id for p in reply.passages}


async def test_delete_document_removes_its_chunks_through_retrieval(
    ingestion_channel: grpc.aio.Channel, retrieval_channel: grpc.aio.Channel, tenant: str
) -> None:
    doomed = (await upload(ingestion_channel, tenant, "zephyr.md", TEXT)).document
    kept = (await upload(ingestion_channel, tenant, "ferry.txt", b"The first ferry leaves at 06:10.")).document
    await index_chunks(retrieval_channel, doomed, ["Zephyr-9 pressure 42 bar", "Zephyr-9 impeller bronze"])
    await index_chunks(retrieval_channel, kept, ["The first ferry leaves Harbor City at 06:10"])
    assert doomed.document_id in await searched_documents(retrieval_channel, tenant, "Zephyr-9 pump")

    reply = await stub(ingestion_channel).DeleteDocument(
        ingestion_pb2.DeleteDocumentRequest(tenant_id=tenant, document_id=doomed.document_id)
    )
    assert reply.document.filename == "zephyr.md"
    assert await searched_documents(retrieval_channel, tenant, "Zephyr-9 pump") == {kept.document_id}
    assert await document_names(ingestion_channel, tenant) == ["ferry.txt"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(ingestion_channel).GetJob(ingestion_pb2.GetJobRequest(tenant_id=tenant, job_id=doomed.latest_job_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # uploading it again makes a new document, not a deduplicated ghost of the deleted one
    again = await upload(ingestion_channel, tenant, "zephyr.md", TEXT)
    assert again.deduplicated is False
    assert again.document.document_id != doomed.document_id


async def test_delete_with_retrieval_down_fails_unavailable_and_keeps_the_document(
    starter: ServiceStarter, tenant: str
) -> None:
    retrieval = await starter.start("retrieval")
    ingestion = await starter.start("ingestion", retrieval_addr=retrieval.address)
    async with grpc.aio.insecure_channel(ingestion.address) as channel:
        document = (await upload(channel, tenant, "a.txt", TEXT)).document
        await starter.stop("retrieval")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub(channel).DeleteDocument(
                ingestion_pb2.DeleteDocumentRequest(tenant_id=tenant, document_id=document.document_id), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retrieval" in (info.value.details() or "")
        assert await document_names(channel, tenant) == ["a.txt"]


async def test_a_corpus_pdf_uploads_in_many_pieces(ingestion_channel: grpc.aio.Channel, tenant: str) -> None:
    path = CORPUS / "kestrel-x2-drone-datasheet.pdf"
    data = path.read_bytes()
    reply = await stub(ingestion_channel).Upload(iter(upload_messages(tenant, path.name, data, piece=1000)))
    assert reply.document.content_type == "application/pdf"
    assert reply.document.size_bytes == len(data)


async def test_the_worker_retries_while_retrieval_is_down_and_finishes_when_it_is_back(
    starter: ServiceStarter, tenant: str
) -> None:
    retrieval = await starter.start("retrieval")
    port = retrieval.port
    ingestion = await starter.start("ingestion", retrieval_addr=retrieval.address)
    # enough attempts to outlast gRPC's reconnect backoff (about 1 s after a refused connection)
    await starter.start(
        "ingestion-worker", retrieval_addr=retrieval.address, retry_backoff_seconds=0.5, job_max_attempts=10
    )
    await starter.stop("retrieval")
    async with grpc.aio.insecure_channel(ingestion.address) as channel:
        job_id = (await upload(channel, tenant, "zephyr.md", TEXT)).job.job_id

        async def job() -> common_pb2.Job:
            reply: common_pb2.Job = await stub(channel).GetJob(
                ingestion_pb2.GetJobRequest(tenant_id=tenant, job_id=job_id)
            )
            return reply

        async def wait_for(condition: Callable[[common_pb2.Job], bool]) -> common_pb2.Job:
            deadline = time.monotonic() + 30
            while not condition(current := await job()):
                assert time.monotonic() < deadline, f"job stuck: {current}"
                await asyncio.sleep(0.05)
            return current

        retrying = await wait_for(lambda j: "attempt 1 failed" in j.error)
        assert retrying.state in (common_pb2.JOB_STATE_QUEUED, common_pb2.JOB_STATE_RUNNING)
        assert "retrieval service is unavailable" in retrying.error
        await starter.start("retrieval", grpc_port=port)  # back, at the same address
        done = await wait_for(lambda j: j.state in (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED))
        assert done.state == common_pb2.JOB_STATE_SUCCEEDED, done.error
        assert done.attempts >= 2
