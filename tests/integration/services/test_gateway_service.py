"""The gateway through its generated stub, with all five services and an ingestion worker running
in this process on the embedded backends, the internal token set as in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from rich.progress import Progress

from ragplatform.backends.llms.extractive import EXTRACTIVE_PREFIX
from ragplatform.cli.eval_command import EVAL_RATE_LIMIT_RETRIES, Outcome, evaluate
from ragplatform.client import GatewayClient
from ragplatform.domain.retrieval_metrics import Expectation
from ragplatform.v1 import (
    common_pb2,
    conversation_pb2,
    conversation_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from tests.integration.services.conftest import (
    CORPUS,
    UPLOAD_LIMIT,
    InProcessPlatform,
    ServiceStarter,
    start_platform,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTERNAL_TOKEN = "service-test-internal-token"
PUMP_MANUAL = CORPUS / "zephyr-9-pump-manual.md"
PUMP_QUESTION = "What is the maximum pressure of the Zephyr-9 pump?"
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED)


@dataclass
class Caller:
    """A tenant's view of the gateway: its stub and its API key."""

    tenant: str
    key: str
    stub: gateway_pb2_grpc.GatewayServiceStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    async def ingest(self, filename: str, data: bytes, **labels: str) -> ingestion_pb2.UploadResponse:
        messages = [
            gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename=filename, metadata=labels)),
            gateway_pb2.IngestRequest(chunk=data),
        ]
        reply: ingestion_pb2.UploadResponse = await self.stub.Ingest(iter(messages), metadata=self.metadata, timeout=30)
        return reply

    async def ingest_and_wait(self, filename: str, data: bytes) -> common_pb2.Job:
        reply = await self.ingest(filename, data)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job: common_pb2.Job = await self.stub.GetJob(
                gateway_pb2.GatewayGetJobRequest(job_id=reply.job.job_id), metadata=self.metadata
            )
            if job.state in TERMINAL:
                assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.error
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {reply.job.job_id} did not finish within 30 s")

    async def ask(self, question: str, **fields: object) -> list[gateway_pb2.AskResponse]:
        request = gateway_pb2.AskRequest(question=question, **fields)  # type: ignore[arg-type]
        return [m async for m in self.stub.Ask(request, metadata=self.metadata, timeout=30)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(shared: ServiceStarter) -> InProcessPlatform:
    return await start_platform(shared, internal_token=INTERNAL_TOKEN)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway_channel(platform: InProcessPlatform) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(platform.gateway.address) as channel:
        yield channel


@pytest_asyncio.fixture(loop_scope="module")
async def caller(platform: InProcessPlatform, gateway_channel: grpc.aio.Channel, tenant: str) -> Caller:
    key, _ = await platform.create_api_key(tenant)
    return Caller(tenant, key, gateway_pb2_grpc.GatewayServiceStub(gateway_channel))


@pytest_asyncio.fixture(loop_scope="module")
async def other_caller(platform: InProcessPlatform, gateway_channel: grpc.aio.Channel, tenant: str) -> Caller:
    key, _ = await platform.create_api_key(tenant + "-other")
    return Caller(tenant + "-other", key, gateway_pb2_grpc.GatewayServiceStub(gateway_channel))


def kinds(messages: list[gateway_pb2.AskResponse]) -> list[str]:
    return [str(m.WhichOneof("event")) for m in messages]


def answer_text(messages: list[gateway_pb2.AskResponse]) -> str:
    return "".join(m.delta for m in messages if m.WhichOneof("event") == "delta")


# --- authentication and rate limits ---------------------------------------------------------


async def unauthenticated(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return info.value.details() or ""


async def test_a_call_without_a_key_is_unauthenticated(gateway_channel: grpc.aio.Channel) -> None:
    details = await unauthenticated(gateway_channel, ())
    assert "missing API key" in details
    assert "ragplatform keys create" in details
    assert "missing API key" in await unauthenticated(gateway_channel, (("authorization", "Basic abc"),))


async def test_a_wrong_key_is_unauthenticated(gateway_channel: grpc.aio.Channel) -> None:
    assert "unknown API key" in await unauthenticated(gateway_channel, (("authorization", "Bearer rag_not-a-key"),))
    assert "unknown API key" in await unauthenticated(gateway_channel, (("x-api-key", "rag_not-a-key"),))


async def test_a_revoked_key_is_unauthenticated(
    platform: InProcessPlatform, gateway_channel: grpc.aio.Channel, tenant: str
) -> None:
    key, key_id = await platform.create_api_key(tenant)
    await platform.revoke_api_key(key_id)
    details = await unauthenticated(gateway_channel, (("authorization", f"Bearer {key}"),))
    assert f"API key {key_id} was revoked" in details


async def test_every_method_needs_a_key(gateway_channel: grpc.aio.Channel) -> None:
    stub = gateway_pb2_grpc.GatewayServiceStub(gateway_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [m async for m in stub.Ask(gateway_pb2.AskRequest(question=PUMP_QUESTION))]
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Ingest(
            iter([gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="a.txt"))]),
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_x_api_key_header_is_accepted(caller: Caller) -> None:
    reply = await caller.stub.ListDocuments(
        gateway_pb2.GatewayListDocumentsRequest(), metadata=(("x-api-key", caller.key),)
    )
    assert list(reply.documents) == []


async def test_the_rate_limit_gives_resource_exhausted_with_retry_after(starter: ServiceStarter, tenant: str) -> None:
    conversation = await starter.start("conversation")
    gateway = await starter.start(
        "gateway", conversation_addr=conversation.address, rate_limit_rps=0.01, rate_limit_burst=2
    )
    key, _ = await InProcessPlatform(starter).create_api_key(tenant)
    other_key, _ = await InProcessPlatform(starter).create_api_key(tenant)
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        request = gateway_pb2.GatewayListConversationsRequest()
        for _ in range(2):  # the burst
            await stub.ListConversations(request, metadata=(("authorization", f"Bearer {key}"),))
        call = stub.ListConversations(request, metadata=(("authorization", f"Bearer {key}"),))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit" in (info.value.details() or "")
        trailing = dict(info.value.trailing_metadata() or ())
        retry_after = float(trailing["retry-after-seconds"])
        assert 0 < retry_after <= 100  # one request at 0.01/s
        # the limit is per key: another key of the same tenant still gets through
        await stub.ListConversations(request, metadata=(("authorization", f"Bearer {other_key}"),))


async def test_the_client_waits_out_the_retry_hint_then_gets_through(starter: ServiceStarter, tenant: str) -> None:
    conversation = await starter.start("conversation")
    gateway = await starter.start(
        "gateway", conversation_addr=conversation.address, rate_limit_rps=0.5, rate_limit_burst=1
    )
    key, _ = await InProcessPlatform(starter).create_api_key(tenant)
    async with GatewayClient(gateway.address, key, rate_limit_retries=0) as impatient:
        await impatient.list_conversations()  # the burst
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await impatient.list_conversations()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    async with GatewayClient(gateway.address, key, rate_limit_retries=3) as patient:
        await patient.list_conversations()  # refused at first (retry in < 2 s), then let through


# --- the internal token ---------------------------------------------------------------------


Metadata = tuple[tuple[str, str], ...]


async def call_retrieval(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = retrieval_pb2.SearchRequest(tenant_id="t", query="pump")
    return await retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(request, metadata=metadata)


async def call_ingestion(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = ingestion_pb2.ListJobsRequest(tenant_id="t")
    return await ingestion_pb2_grpc.IngestionServiceStub(channel).ListJobs(request, metadata=metadata)


async def call_conversation(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = conversation_pb2.ListConversationsRequest(tenant_id="t")
    return await conversation_pb2_grpc.ConversationServiceStub(channel).ListConversations(request, metadata=metadata)


async def call_generation(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = generation_pb2.GenerateRequest(tenant_id="t", question="q")
    return [m async for m in generation_pb2_grpc.GenerationServiceStub(channel).Generate(request, metadata=metadata)]


async def test_internal_services_refuse_calls_without_the_internal_token(platform: InProcessPlatform) -> None:
    calls = {
        "retrieval": call_retrieval,
        "ingestion": call_ingestion,
        "conversation": call_conversation,
        "generation": call_generation,
    }
    for service, call in calls.items():
        async with grpc.aio.insecure_channel(platform.address(service)) as channel:
            refused: tuple[Metadata, ...] = ((), (("x-ragplatform-internal-token", "wrong"),))
            for metadata in refused:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(channel, metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, service
                assert "internal token" in (info.value.details() or "")
            # with the token the call goes through
            await call(channel, (("x-ragplatform-internal-token", INTERNAL_TOKEN),))


async def test_the_gateway_and_worker_send_the_internal_token(caller: Caller) -> None:
    # ingestion (gateway -> ingestion), indexing (worker -> retrieval), Ask (gateway -> retrieval,
    # conversation, generation): each hop would be UNAUTHENTICATED without the token.
    job = await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    assert job.chunks_done == job.chunks_total > 0
    messages = await caller.ask(PUMP_QUESTION)
    assert messages[0].sources.passages[0].filename == PUMP_MANUAL.name


# --- Ask --------------------------------------------------------------------------------------


async def test_ask_streams_sources_then_deltas_then_done_citing_the_document(caller: Caller) -> None:
    await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    await caller.ingest_and_wait("ferry.txt", b"The first ferry leaves Harbor City at 06:10 on weekdays.")
    messages = await caller.ask(PUMP_QUESTION)
    order = kinds(messages)
    assert order[0] == "sources"
    assert order[-1] == "done"
    assert set(order[1:-1]) == {"delta"}
    assert len(order) > 3
    assert messages[0].sources.passages[0].filename == PUMP_MANUAL.name
    done = messages[-1].done
    assert PUMP_MANUAL.name in {c.filename for c in done.citations}
    assert done.extractive is True
    assert done.cached is False
    assert done.conversation_id
    assert "42 bar" in answer_text(messages)
    assert answer_text(messages).startswith(EXTRACTIVE_PREFIX)


async def test_ask_with_no_documents_still_streams_in_order_and_says_so(caller: Caller) -> None:
    messages = await caller.ask(PUMP_QUESTION)
    assert kinds(messages)[0] == "sources"
    assert list(messages[0].sources.passages) == []
    assert kinds(messages)[-1] == "done"
    assert "found nothing" in answer_text(messages)


def rewrite_calls() -> float:
    """RewriteQuery calls the generation service has answered (the services share this process's
    metrics registry)."""
    labels = {"method": "/ragplatform.v1.GenerationService/RewriteQuery", "code": "OK"}
    return REGISTRY.get_sample_value("ragplatform_grpc_server_handled_total", labels) or 0.0


async def test_ask_continues_a_conversation(caller: Caller, other_caller: Caller) -> None:
    before = rewrite_calls()
    first = await caller.ask("Where is the pump?")
    assert rewrite_calls() == before  # a first question costs no rewrite call
    assert (first[-1].done.search_query, first[-1].done.query_rewriter) == ("Where is the pump?", "")
    conversation_id = first[-1].done.conversation_id
    second = await caller.ask("And the ferry?", conversation_id=conversation_id)
    assert second[-1].done.conversation_id == conversation_id
    assert rewrite_calls() == before + 1
    # Lexical rewrite (extractive mode): the follow-up plus the earlier question's key words.
    assert (second[-1].done.search_query, second[-1].done.query_rewriter) == ("And the ferry? pump", "lexical")
    history = await caller.stub.GetConversation(
        gateway_pb2.GatewayGetConversationRequest(conversation_id=conversation_id), metadata=caller.metadata
    )
    assert [t.content for t in history.turns][::2] == ["Where is the pump?", "And the ferry?"]
    assert [t.role for t in history.turns] == [common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT] * 2
    # another tenant can neither read nor continue it
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await other_caller.stub.GetConversation(
            gateway_pb2.GatewayGetConversationRequest(conversation_id=conversation_id), metadata=other_caller.metadata
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await other_caller.ask("Me too?", conversation_id=conversation_id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"question": "  "}, "question is empty"),
        ({"question": "q", "top_k": 51}, "top_k must be between 1 and 50"),
        ({"question": "q", "score_threshold": 2.0}, "score_threshold"),
        ({"question": "q" * 4001}, "the limit is 4000"),
    ],
)
async def test_invalid_asks_are_refused(caller: Caller, fields: dict[str, object], message: str) -> None:
    question = str(fields.pop("question"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.ask(question, **fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")


async def test_the_answer_cache_hits_for_the_same_question_and_misses_after_the_corpus_changes(
    caller: Caller,
) -> None:
    await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    first = await caller.ask(PUMP_QUESTION)
    assert first[-1].done.cached is False
    second = await caller.ask("  what is the MAXIMUM pressure of the Zephyr-9 pump  ")  # same, normalised
    assert kinds(second)[0] == "sources"
    assert kinds(second)[-1] == "done"
    assert second[-1].done.cached is True
    assert answer_text(second) == answer_text(first)
    assert list(second[-1].done.citations) == list(first[-1].done.citations)
    # a cached answer still gets its own conversation with both turns stored
    assert second[-1].done.conversation_id != first[-1].done.conversation_id
    history = await caller.stub.GetConversation(
        gateway_pb2.GatewayGetConversationRequest(conversation_id=second[-1].done.conversation_id),
        metadata=caller.metadata,
    )
    assert len(history.turns) == 2

    await caller.ingest_and_wait("pump-addendum.txt", b"Since 2026 the Zephyr-9 pump reaches 45 bar.")
    after_change = await caller.ask(PUMP_QUESTION)
    assert after_change[-1].done.cached is False
    assert (await caller.ask(PUMP_QUESTION))[-1].done.cached is True


async def test_the_cache_is_per_tenant(caller: Caller, other_caller: Caller) -> None:
    assert (await caller.ask(PUMP_QUESTION))[-1].done.cached is False
    assert (await other_caller.ask(PUMP_QUESTION))[-1].done.cached is False


async def test_the_request_id_comes_back_in_ask_done_and_trailing_metadata(caller: Caller) -> None:
    call = caller.stub.Ask(
        gateway_pb2.AskRequest(question=PUMP_QUESTION),
        metadata=(*caller.metadata, ("x-request-id", "req-service-test-1")),
        timeout=30,
    )
    messages = [m async for m in call]
    assert messages[-1].done.request_id == "req-service-test-1"
    assert dict(await call.trailing_metadata())["x-request-id"] == "req-service-test-1"
    # without one, the gateway makes one and reports the same id in both places
    call = caller.stub.Ask(gateway_pb2.AskRequest(question=PUMP_QUESTION), metadata=caller.metadata, timeout=30)
    messages = [m async for m in call]
    generated = messages[-1].done.request_id
    assert generated
    assert dict(await call.trailing_metadata())["x-request-id"] == generated


async def test_an_error_also_carries_the_request_id(caller: Caller) -> None:
    call = caller.stub.GetJob(
        gateway_pb2.GatewayGetJobRequest(job_id="no-such-job"),
        metadata=(*caller.metadata, ("x-request-id", "req-service-test-2")),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert dict(info.value.trailing_metadata() or ())["x-request-id"] == "req-service-test-2"


# --- documents, jobs and tenants --------------------------------------------------------------


async def test_the_tenant_comes_from_the_key_and_tenants_are_isolated(caller: Caller, other_caller: Caller) -> None:
    job = await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    documents = await caller.stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=caller.metadata)
    assert [(d.filename, d.tenant_id) for d in documents.documents] == [(PUMP_MANUAL.name, caller.tenant)]

    theirs = other_caller.metadata
    assert (
        list(
            (
                await other_caller.stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=theirs)
            ).documents
        )
        == []
    )
    assert list((await other_caller.stub.ListJobs(gateway_pb2.GatewayListJobsRequest(), metadata=theirs)).jobs) == []
    search = await other_caller.stub.Search(gateway_pb2.GatewaySearchRequest(query=PUMP_QUESTION), metadata=theirs)
    assert list(search.passages) == []
    for call in (
        other_caller.stub.GetJob(gateway_pb2.GatewayGetJobRequest(job_id=job.job_id), metadata=theirs),
        other_caller.stub.DeleteDocument(
            gateway_pb2.GatewayDeleteDocumentRequest(document_id=job.document_id), metadata=theirs
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    answer = await other_caller.ask(PUMP_QUESTION)
    assert list(answer[0].sources.passages) == []


def ingest_metadata(filename: str) -> gateway_pb2.IngestRequest:
    return gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename=filename))


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([ingest_metadata("photo.png"), gateway_pb2.IngestRequest(chunk=b"\x89PNG")], "unsupported file type"),
        ([ingest_metadata("empty.txt")], "is empty"),
        (
            [ingest_metadata("big.txt"), *[gateway_pb2.IngestRequest(chunk=b"x" * 1024)] * (UPLOAD_LIMIT // 1024 + 1)],
            "RAG_MAX_UPLOAD_BYTES",
        ),
        ([ingest_metadata("notes/a.txt"), gateway_pb2.IngestRequest(chunk=b"data")], "not a plain file name"),
        ([gateway_pb2.IngestRequest(chunk=b"data")], "must start with a metadata message"),
        ([], "the upload stream was empty"),
        (
            [ingest_metadata("a.txt"), gateway_pb2.IngestRequest(chunk=b"data"), ingest_metadata("b.txt")],
            "metadata may only be sent once",
        ),
    ],
)
async def test_bad_uploads_through_the_gateway_fail_at_once_with_their_message(
    caller: Caller, messages: list[gateway_pb2.IngestRequest], message: str
) -> None:
    # Regression: a malformed stream used to hang the gateway until the caller's deadline.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await caller.stub.Ingest(iter(messages), metadata=caller.metadata, timeout=20)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")
    listed = await caller.stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=caller.metadata)
    assert list(listed.documents) == []


async def test_delete_document_through_the_gateway_removes_it_from_answers(caller: Caller) -> None:
    job = await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    found = await caller.stub.Search(gateway_pb2.GatewaySearchRequest(query=PUMP_QUESTION), metadata=caller.metadata)
    assert found.passages[0].document_id == job.document_id
    assert (await caller.ask(PUMP_QUESTION))[-1].done.citations  # and now cached
    await caller.stub.DeleteDocument(
        gateway_pb2.GatewayDeleteDocumentRequest(document_id=job.document_id), metadata=caller.metadata
    )
    gone = await caller.stub.Search(gateway_pb2.GatewaySearchRequest(query=PUMP_QUESTION), metadata=caller.metadata)
    assert list(gone.passages) == []
    answer = await caller.ask(PUMP_QUESTION)
    assert answer[-1].done.cached is False  # the deletion changed the corpus: no stale cached answer
    assert list(answer[-1].done.citations) == []


async def test_a_length_limited_answer_is_not_served_to_a_question_without_the_limit(caller: Caller) -> None:
    await caller.ingest_and_wait(PUMP_MANUAL.name, PUMP_MANUAL.read_bytes())
    # Regression: max_tokens was not part of the cache key, so a truncated answer was replayed.
    assert (await caller.ask(PUMP_QUESTION, max_tokens=12))[-1].done.cached is False
    assert (await caller.ask(PUMP_QUESTION))[-1].done.cached is False
    assert (await caller.ask(PUMP_QUESTION, max_tokens=12))[-1].done.cached is True


async def test_eval_waits_its_turn_under_the_rate_limit_instead_of_aborting(
    platform: InProcessPlatform, tenant: str
) -> None:
    """`ragplatform eval` on a question file at the default 20 requests/s: every question is
    answered. Without retries the same batch (64 in flight, over the burst of 40) is refused."""
    key, _ = await platform.create_api_key(tenant)
    questions = [Expectation(f"how do I do thing number {n}?", "nothing.txt") for n in range(120)]

    async def run(retries: int) -> list[Outcome]:
        async with GatewayClient(platform.gateway.address, key, rate_limit_retries=retries) as client:
            return await evaluate(client, questions, ["search"], 64, Progress(disable=True))

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await run(0)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    outcomes = await run(EVAL_RATE_LIMIT_RETRIES)
    assert [o.expectation for o in outcomes] == questions
    assert all(o.rank is None for o in outcomes)  # the tenant has no documents
