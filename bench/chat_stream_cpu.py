"""CPU per streamed answer in the generation service's HTTP client, against the OpenAI-compatible
TEST DOUBLE (its own process, on other CPUs than the client when the machine has them).

    python bench/chat_stream_cpu.py [--answers 1000] [--concurrency 100] [--rounds 2] [--loop uvloop]

Rows, alternated each round so a loaded machine weighs on all alike: `openai client` (the streamed
`/chat/completions` POST through `make_openai_client`, its body read with the SDK's
`iter_lines` and parsed by `chat_chunks` — what the generator did before `openai_http`) and
`OpenAIAnswerGenerator` (the platform's generator: `openai_http.post_stream`, retries, circuit
breaker, citations). Printed: CPU ms per answer in this process and the ratio to the generator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai import AsyncStream
from openai._base_client import make_request_options
from openai._constants import RAW_RESPONSE_HEADER
from openai._response import AsyncAPIResponse, AsyncResponseContextManager
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from bench.ask_throughput import start_llm_double
from ragplatform.backends.llms.base import AnswerRequest
from ragplatform.backends.llms.chat_chunks import read_chunks
from ragplatform.backends.llms.openai_compatible import OpenAIAnswerGenerator
from ragplatform.backends.openai_client import make_openai_client
from ragplatform.core.event_loop import EventLoopKind, run
from ragplatform.core.settings import GenerationSettings, load_settings
from ragplatform.domain.models import ScoredPassage
from ragplatform.domain.prompts import build_chat_messages

MODEL = "test-model"
QUESTION = "What is the maximum pressure of the Zephyr-9 pump?"
PASSAGES = [
    ScoredPassage(f"c{i}", f"d{i}", f"manual-{i}.md", 0, "The Zephyr-9 pump's maximum pressure is 42 bar. " * 8, 0.9)
    for i in range(5)
]
Answer = Callable[[], Awaitable[Any]]


async def cpu_per_answer(answer: Answer, answers: int, concurrency: int) -> float:
    """CPU ms of this process per answer, `concurrency` answers streaming at once."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await answer()

    await asyncio.gather(*(worker(1) for _ in range(concurrency)))  # connections opened, code warm
    began = time.process_time()
    await asyncio.gather(*(worker(answers // concurrency) for _ in range(concurrency)))
    return 1000 * (time.process_time() - began) / (answers // concurrency * concurrency)


async def measure(url: str, args: argparse.Namespace) -> None:
    sdk = make_openai_client(url, None, 30.0)
    generator = OpenAIAnswerGenerator(
        load_settings(GenerationSettings, llm="openai", llm_url=url, llm_model=MODEL, llm_timeout_seconds=30.0)
    )
    body = {
        "model": MODEL,
        "messages": build_chat_messages(QUESTION, PASSAGES),
        "max_tokens": 256,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def through_sdk() -> None:
        request = sdk.post(
            "/chat/completions",
            body=body,
            options=make_request_options(extra_headers={RAW_RESPONSE_HEADER: "stream"}, security={"bearer_auth": True}),
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
        manager = AsyncResponseContextManager(cast(Awaitable[AsyncAPIResponse[Any]], request))
        async with manager as response:
            async for _chunk in read_chunks(one_line_batches(response.iter_lines())):
                pass

    async def one_line_batches(lines: AsyncIterator[str]) -> AsyncIterator[list[str]]:
        async for line in lines:
            yield [line]

    async def through_generator() -> None:
        request = AnswerRequest(tenant_id="bench", question=QUESTION, passages=PASSAGES)
        async for _event in generator.generate(request):
            pass

    rows: dict[str, Answer] = {"openai client": through_sdk, "OpenAIAnswerGenerator": through_generator}
    results: dict[str, list[float]] = {name: [] for name in rows}
    try:
        for _ in range(args.rounds):
            for name, answer in rows.items():
                results[name].append(await cpu_per_answer(answer, args.answers, args.concurrency))
    finally:
        await sdk.close()
        await generator.close()
    ours = min(results["OpenAIAnswerGenerator"])
    print(f"{args.answers} answers per row and round, {args.concurrency} streaming at once, loop {args.loop}")
    for name, values in results.items():
        figures = " / ".join(f"{v:.2f}" for v in values)
        print(f"  {name:24} {figures} ms CPU per answer   x{min(values) / ours:.1f} the generator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--llm-latency", type=float, default=0.2, help="the double's seconds before its first token")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:  # the double on the last CPU, this process on the others
        os.sched_setaffinity(0, {cpus[-1]})
    double, url = start_llm_double(args.llm_latency)
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        run(measure(url, args), cast(EventLoopKind, args.loop))
    finally:
        double.terminate()
        double.wait(timeout=30)


if __name__ == "__main__":
    main()
