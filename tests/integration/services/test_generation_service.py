"""The generation service through its generated stub, with the embedded extractive answerer."""

from __future__ import annotations

import grpc
import pytest

from ragplatform.backends.llms.extractive import EXTRACTIVE_PREFIX
from ragplatform.v1 import common_pb2, generation_pb2, generation_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSAGES = [
    common_pb2.Passage(
        chunk_id="c-pump-0",
        document_id="doc-pump",
        filename="zephyr-9-pump-manual.md",
        chunk_index=0,
        text="The Zephyr-9 pump delivers a maximum pressure of 42 bar. It weighs 18 kg.",
        score=0.8,
    ),
    common_pb2.Passage(
        chunk_id="c-ferry-0",
        document_id="doc-ferry",
        filename="harbor-city-ferry-timetable.txt",
        chunk_index=0,
        text="The first ferry leaves Harbor City at 06:10 every weekday.",
        score=0.3,
    ),
]


async def generate(channel: grpc.aio.Channel, **fields: object) -> list[generation_pb2.GenerateResponse]:
    request = generation_pb2.GenerateRequest(**{"tenant_id": "acme", **fields})  # type: ignore[arg-type]
    return [m async for m in generation_pb2_grpc.GenerationServiceStub(channel).Generate(request)]


def text_of(messages: list[generation_pb2.GenerateResponse]) -> str:
    return "".join(m.delta for m in messages if m.WhichOneof("event") == "delta")


async def test_deltas_stream_then_exactly_one_done(generation_channel: grpc.aio.Channel) -> None:
    messages = await generate(
        generation_channel, question="What is the maximum pressure of the Zephyr-9 pump?", passages=PASSAGES
    )
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds.count("done") == 1
    assert kinds[-1] == "done"
    assert kinds.count("delta") >= 2  # streamed in pieces, not one blob
    done = messages[-1].done
    assert done.finish_reason == "stop"
    assert done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


async def test_the_extractive_answer_says_so_quotes_and_cites(generation_channel: grpc.aio.Channel) -> None:
    messages = await generate(
        generation_channel, question="What is the maximum pressure of the Zephyr-9 pump?", passages=PASSAGES
    )
    done = messages[-1].done
    answer = text_of(messages)
    assert done.extractive is True
    assert done.model == "extractive"
    assert answer.startswith(EXTRACTIVE_PREFIX)
    assert "42 bar" in answer
    assert "[1]" in answer
    assert done.citations[0].filename == "zephyr-9-pump-manual.md"
    assert done.citations[0].document_id == "doc-pump"
    assert done.citations[0].chunk_id == "c-pump-0"
    assert "doc-ferry" not in {c.document_id for c in done.citations}


async def test_without_passages_it_says_it_found_nothing(generation_channel: grpc.aio.Channel) -> None:
    messages = await generate(generation_channel, question="Who won the 1954 World Cup?")
    answer = text_of(messages)
    assert "found nothing in your documents" in answer
    assert list(messages[-1].done.citations) == []
    assert messages[-1].done.extractive is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"question": "   "}, "question is empty"),
        ({"question": "q", "tenant_id": ""}, "tenant_id is required"),
        ({"question": "q", "max_tokens": -1}, "max_tokens"),
        ({"question": "q" * 8001}, "longer than 8000"),
        ({"question": "q", "passages": [PASSAGES[0]] * 51}, "at most 50 passages"),
    ],
)
async def test_invalid_requests_are_refused_before_anything_streams(
    generation_channel: grpc.aio.Channel, fields: dict[str, object], message: str
) -> None:
    request = generation_pb2.GenerateRequest(**{"tenant_id": "acme", **fields})  # type: ignore[arg-type]
    call = generation_pb2_grpc.GenerationServiceStub(generation_channel).Generate(request)
    received: list[generation_pb2.GenerateResponse] = []

    async def drain() -> None:
        async for m in call:
            received.append(m)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await drain()
    assert received == []
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")
