"""The whole platform, separate processes, embedded backends: documents in, cited answers out."""

from __future__ import annotations

import grpc
import pytest

from ragplatform.v1 import common_pb2, gateway_pb2
from tests.e2e.conftest import CORPUS, INVALID, UPLOAD_LIMIT, RunningPlatform, wait_for_jobs
from tests.support.office_files import build_docx, build_pptx, build_xlsx

pytestmark = pytest.mark.e2e


async def ask(
    platform: RunningPlatform, question: str, key: str | None = None, **kwargs: object
) -> list[gateway_pb2.AskResponse]:
    async with platform.client(key) as client:
        return [m async for m in client.ask(question, **kwargs)]  # type: ignore[arg-type]


def answer_text(messages: list[gateway_pb2.AskResponse]) -> str:
    return "".join(m.delta for m in messages if m.WhichOneof("event") == "delta")


def cited_files(messages: list[gateway_pb2.AskResponse]) -> set[str]:
    return {c.filename for c in messages[-1].done.citations}


def test_every_corpus_document_was_ingested(platform: RunningPlatform) -> None:
    assert set(platform.corpus_jobs) == {p.name for p in CORPUS.iterdir()}


@pytest.mark.parametrize(
    ("question", "document", "fact"),
    [
        ("What is the maximum pressure of the Zephyr-9 pump?", "zephyr-9-pump-manual.md", "42 bar"),
        ("What is the maximum flight time of the Kestrel X2 drone?", "kestrel-x2-drone-datasheet.pdf", None),
        ("When does the first ferry leave Harbor City?", "harbor-city-ferry-timetable.txt", None),
    ],
)
async def test_answer_streams_in_order_and_cites_the_document_with_the_fact(
    platform: RunningPlatform, question: str, document: str, fact: str | None
) -> None:
    messages = await ask(platform, question)
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[0] == "sources"
    assert kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"}
    assert messages[0].sources.passages[0].filename == document
    assert document in cited_files(messages)
    done = messages[-1].done
    assert done.extractive is True
    assert done.conversation_id
    assert done.usage.total_tokens > 0
    if fact:
        assert fact in answer_text(messages)


async def test_a_conversation_keeps_both_turns_of_each_question(platform: RunningPlatform) -> None:
    first = await ask(platform, "What is the Zephyr-9 impeller made of?")
    conversation_id = first[-1].done.conversation_id
    second = await ask(platform, "And its maximum pressure?", conversation_id=conversation_id)
    assert second[-1].done.conversation_id == conversation_id
    async with platform.client() as client:
        history = await client.get_conversation(conversation_id)
    assert [t.role for t in history.turns] == [common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT] * 2
    assert history.turns[2].content == "And its maximum pressure?"
    assert history.turns[3].citations


async def test_tenants_never_see_each_others_documents_jobs_or_conversations(
    platform: RunningPlatform,
) -> None:
    a_answer = await ask(platform, "What is the maximum pressure of the Zephyr-9 pump?")
    async with platform.client(platform.key_b) as b:
        assert list((await b.list_documents()).documents) == []
        assert list((await b.list_jobs()).jobs) == []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await b.get_job(platform.corpus_jobs["zephyr-9-pump-manual.md"])
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await b.get_conversation(a_answer[-1].done.conversation_id)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert list((await b.search("Zephyr-9 maximum pressure")).passages) == []
    b_answer = await ask(platform, "What is the maximum pressure of the Zephyr-9 pump?", key=platform.key_b)
    assert list(b_answer[0].sources.passages) == []
    assert list(b_answer[-1].done.citations) == []


async def test_missing_or_wrong_api_key_is_unauthenticated(platform: RunningPlatform) -> None:
    for key in ("", "rag_not-a-real-key"):
        async with platform.client(key) as client:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await client.list_documents()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "ragplatform keys create" in (info.value.details() or "")


async def test_an_ask_past_its_deadline_is_deadline_exceeded(platform: RunningPlatform) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ask(platform, "What is the maximum pressure of the Zephyr-9 pump?", timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_bad_uploads_get_clear_errors_and_lose_nothing_else(platform: RunningPlatform) -> None:
    async with platform.client() as client:
        documents_before = len((await client.list_documents()).documents)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.ingest_file(INVALID / "empty.txt")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "empty" in (info.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.ingest_bytes("photo.png", b"\x89PNG\r\n\x1a\n")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "pdf" in (info.value.details() or "").lower()  # names what is supported
        assert ".docx" in (info.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.ingest_bytes("huge.txt", b"lorem ipsum " * (UPLOAD_LIMIT // 10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "RAG_MAX_UPLOAD_BYTES" in (info.value.details() or "")

        reply = await client.ingest_file(INVALID / "corrupt.pdf")
        states = await wait_for_jobs(client, [reply.job.job_id])
        assert states[reply.job.job_id] == common_pb2.JOB_STATE_FAILED
        job = await client.get_job(reply.job.job_id)
        assert "corrupt.pdf" in job.error or "PDF" in job.error

        # .pptx is a supported type, so a damaged one is accepted, then FAILED with the reason
        reply = await client.ingest_file(INVALID / "slides.pptx")
        states = await wait_for_jobs(client, [reply.job.job_id])
        assert states[reply.job.job_id] == common_pb2.JOB_STATE_FAILED
        assert "not a readable PowerPoint presentation" in (await client.get_job(reply.job.job_id)).error
        assert len((await client.list_documents()).documents) == documents_before + 2  # the broken ones, recorded
    # everything ingested before still answers
    messages = await ask(platform, "What is the maximum pressure of the Zephyr-9 pump?")
    assert "zephyr-9-pump-manual.md" in cited_files(messages)


async def test_identical_content_is_not_ingested_twice_and_a_change_replaces_old_chunks(
    platform: RunningPlatform,
) -> None:
    async with platform.client() as client:
        again = await client.ingest_file(CORPUS / "zephyr-9-pump-manual.md", {"corpus": "e2e"})
        assert again.deduplicated
        assert again.job.job_id == platform.corpus_jobs["zephyr-9-pump-manual.md"]

        v1 = await client.ingest_bytes("changing.md", b"# Gadget\n\nThe Quibbler gadget glows teal in the dark.\n")
        await wait_for_jobs(client, [v1.job.job_id])
        v2 = await client.ingest_bytes("changing.md", b"# Gadget\n\nThe Quibbler gadget hums at 440 hertz.\n")
        assert not v2.deduplicated
        assert v2.document.document_id == v1.document.document_id
        assert v2.job.job_id != v1.job.job_id
        await wait_for_jobs(client, [v2.job.job_id])
        passages = (await client.search("Quibbler gadget", top_k=10)).passages
        texts = [p.text for p in passages if p.filename == "changing.md"]
        assert texts
        assert all("440 hertz" in t for t in texts)
        assert not any("teal" in t for t in texts)


async def test_a_deleted_document_is_no_longer_cited(platform: RunningPlatform) -> None:
    async with platform.client() as client:
        reply = await client.ingest_bytes("ephemeral.txt", b"The Vorlon beacon on Mount Ystad blinks every 9 seconds.")
        await wait_for_jobs(client, [reply.job.job_id])
        before = await ask(platform, "How often does the Vorlon beacon blink?")
        assert "ephemeral.txt" in cited_files(before)
        await client.delete_document(reply.document.document_id)
        after = await ask(platform, "How often does the Vorlon beacon blink?")
        assert "ephemeral.txt" not in cited_files(after)
        assert after[-1].done.cached is False  # the corpus changed, so the cached answer was not reused


async def test_the_same_question_again_is_answered_from_the_cache(platform: RunningPlatform) -> None:
    question = "Which company builds the Zephyr-9 pump?"
    first = await ask(platform, question)
    second = await ask(platform, question.upper())
    assert first[-1].done.cached is False
    assert second[-1].done.cached is True
    assert answer_text(second) == answer_text(first)
    assert cited_files(second) == cited_files(first)


@pytest.mark.parametrize(
    ("filename", "data", "question", "fact"),
    [
        (
            "quokka-lamp-manual.docx",
            build_docx(
                ["The Quokka lamp is assembled in Tromsø.", "Its shade is made of frosted basalt glass."],
                table=[["part", "supplier"], ["shade", "Vitrum Nord"]],
                heading="Quokka lamp",
            ),
            "What is the shade of the Quokka lamp made of?",
            "frosted basalt glass",
        ),
        (
            "wombat-roadmap.pptx",
            build_pptx([("Wombat roadmap", "The Wombat scooter launches in Reykjavik in May")]),
            "Where does the Wombat scooter launch?",
            "Reykjavik",
        ),
        (
            "numbat-budget.xlsx",
            build_xlsx({"Numbat": [["item", "budget"], ["Numbat kiln upgrade", "8400 crowns"]]}),
            "What is the budget of the Numbat kiln upgrade?",
            "8400 crowns",
        ),
    ],
)
async def test_office_documents_are_ingested_and_cited(
    platform: RunningPlatform, filename: str, data: bytes, question: str, fact: str
) -> None:
    async with platform.client() as client:
        reply = await client.ingest_bytes(filename, data)
        states = await wait_for_jobs(client, [reply.job.job_id])
        assert states[reply.job.job_id] == common_pb2.JOB_STATE_SUCCEEDED, (
            await client.get_job(reply.job.job_id)
        ).error
    messages = await ask(platform, question)
    assert filename in cited_files(messages)
    assert fact in answer_text(messages)
