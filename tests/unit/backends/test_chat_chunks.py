"""Reading streamed chat-completion events without the client's per-chunk models."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from ragplatform.backends.llms.chat_chunks import ChatChunk, StreamEnd, merge_chunks, read_chunks, read_event_line
from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import TokenUsage


def data(payload: object) -> str:
    return "data: " + json.dumps(payload)


def test_a_delta_its_finish_reason_and_the_usage_chunk_are_read() -> None:
    delta = {"choices": [{"index": 0, "delta": {"content": "Zephyr"}, "finish_reason": None}]}
    assert read_event_line(data(delta)) == ChatChunk("Zephyr", None, None)
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    assert read_event_line(data(last)) == ChatChunk("", "stop", None)
    usage = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}
    assert read_event_line(data(usage)) == ChatChunk("", None, TokenUsage(12, 3))


def test_lines_without_data_are_skipped_and_done_ends_the_stream() -> None:
    for line in ("", ": keep-alive", "event: message", "data:"):
        assert read_event_line(line) is None
    with pytest.raises(StreamEnd):
        read_event_line("data: [DONE]")


def test_an_error_event_is_unavailable_with_the_servers_message() -> None:
    with pytest.raises(Unavailable, match="model overloaded"):
        read_event_line(data({"error": {"message": "model overloaded", "type": "server_error"}}))


def delta(text: str, finish_reason: str | None = None) -> str:
    return data({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}]})


def test_an_event_that_is_not_a_chunk_is_unavailable_and_says_so() -> None:
    for line in ("data: {not json", 'data: {"choices": "many"}'):
        with pytest.raises(Unavailable, match="not a chat-completion chunk"):
            read_event_line(line)


def test_merged_chunks_keep_the_text_in_order_and_the_last_finish_reason_and_usage() -> None:
    chunks = [ChatChunk("Zeph", None, None), ChatChunk("yr", "stop", None), ChatChunk("", None, TokenUsage(9, 2))]
    assert merge_chunks(chunks) == ChatChunk("Zephyr", "stop", TokenUsage(9, 2))


async def test_chunks_read_together_are_merged_and_each_read_is_passed_on_as_it_comes() -> None:
    second_read = asyncio.Event()
    seen: list[str] = []

    async def batches() -> AsyncIterator[list[str]]:
        yield [delta("The "), "", delta("pump ")]
        await second_read.wait()  # the first read's text must be out before the next read
        yield [delta("holds"), delta(" 8 bar", "stop"), "data: [DONE]"]

    async for chunk in read_chunks(batches()):
        seen.append(chunk.text)
        second_read.set()
    assert seen == ["The pump ", "holds 8 bar"]


async def test_text_before_an_error_event_in_the_same_read_is_passed_on_first() -> None:
    async def batches() -> AsyncIterator[list[str]]:
        yield [delta("partial"), data({"error": {"message": "model overloaded"}})]

    seen: list[str] = []

    async def read() -> None:
        async for chunk in read_chunks(batches()):
            seen.append(chunk.text)

    with pytest.raises(Unavailable, match="model overloaded"):
        await read()
    assert seen == ["partial"]


async def test_read_chunks_stops_at_done() -> None:
    async def lines() -> AsyncIterator[list[str]]:
        yield [data({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]}), ""]
        yield ["data: [DONE]"]
        yield [data({"choices": [{"delta": {"content": "never"}, "finish_reason": None}]})]

    assert [c.text async for c in read_chunks(lines())] == ["a"]


async def test_read_chunks_reads_the_body_to_its_end_after_done() -> None:
    """A body read to its end lets the HTTP connection go back to the pool."""
    read: list[str] = []

    async def lines() -> AsyncIterator[list[str]]:
        for line in (data({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]}), "data: [DONE]", ""):
            read.append(line)
            yield [line]
        read.append("end")

    assert [c.text async for c in read_chunks(lines())] == ["a"]
    assert read[-1] == "end"


async def test_a_body_that_does_not_end_after_done_is_given_up() -> None:
    async def lines() -> AsyncIterator[list[str]]:
        yield [data({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]})]
        yield ["data: [DONE]"]
        await asyncio.sleep(3600)
        yield ["never"]

    chunks = [c.text async for c in read_chunks(lines(), drain_seconds=0.05)]
    assert chunks == ["a"]
