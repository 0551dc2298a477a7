"""The OpenAI-compatible TEST DOUBLE itself, run as its own process the way end-to-end tests and
benchmarks start it, and spoken to with the real `openai` client."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import cast

import aiohttp
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from ragplatform.backends.embedders.hashing import hash_embed
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.prompts import NO_ANSWER, build_chat_messages
from tests.support.openai_test_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[3]


def chat(question: str, passages: list[ScoredPassage]) -> list[ChatCompletionMessageParam]:
    return cast(list[ChatCompletionMessageParam], build_chat_messages(question, passages))


async def test_runs_as_a_process_answers_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.openai_test_server",
        "--port",
        "0",
        "--latency",
        "0.01",
        "--dimension",
        "32",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()
        assert line[0] == "ready"
        client = AsyncOpenAI(base_url=line[1], api_key="any", max_retries=0)
        passages = [ScoredPassage("c", "d", "aurora.html", 0, "The signature drink is cardamom cold brew.", 1.0)]

        reply = await client.chat.completions.create(model="m", messages=chat("What is the signature drink?", passages))
        assert reply.choices[0].message.content == (
            "According to aurora.html: The signature drink is cardamom cold brew [1]."
        )
        empty = await client.chat.completions.create(model="m", messages=chat("Why?", []))
        assert empty.choices[0].message.content == NO_ANSWER

        # The client asks for base64 unless told otherwise; the double speaks both.
        embedded = await client.embeddings.create(model="e", input="cold brew")
        assert len(embedded.data[0].embedding) == 32
        assert sum(a * b for a, b in zip(embedded.data[0].embedding, hash_embed("cold brew", 32), strict=True)) > 0.999
        await client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_reports_how_late_each_streamed_first_token_left_beyond_its_latency() -> None:
    async with OpenAITestServer(latency=0.5) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="any", max_retries=0)
        passages = [ScoredPassage("c", "d", "aurora.html", 0, "The signature drink is cardamom cold brew.", 1.0)]
        stream = await client.chat.completions.create(
            model="m", messages=chat("What is the signature drink?", passages), stream=True
        )
        async for _ in stream:
            pass
        await client.close()
        stats_url = f"http://{server.host}:{server.port}/test/stats"
        async with aiohttp.ClientSession() as session, session.get(stats_url) as reply:
            stats = await reply.json()
    [late] = stats["first_token_lateness_seconds"]
    # The 0.5 s it was told to wait is not lateness; what is left is the double's own delay.
    assert 0.0 <= late < 0.4
